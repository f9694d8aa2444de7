package sim_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/sim"
)

// The simplest src there is: a simulator on a loopback port and a client
// wired to it (its own API key, its public key pinned, blocks named
// "simulator" so that no label mistakes them for a real service's).
func ExampleServer_Source() {
	s := sim.New()
	defer s.Close()
	src, err := s.Source()
	if err != nil {
		log.Fatal(err)
	}
	p, err := entropy.New(src)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	label, err := p.ReadLabelled(context.Background(), make([]byte, 32))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(label.Verifiable, label.Spans[0].Source)
	// Output: true simulator
}

// Script makes the next requests fail as a real service would: here one
// 503 with a Retry-After, which the client reports as a transient APIError
// with the hold it asked for.
func ExampleServer_Script() {
	s := sim.New()
	defer s.Close()
	src, err := s.Source()
	if err != nil {
		log.Fatal(err)
	}
	s.Script(sim.Status(http.StatusServiceUnavailable, sim.ShapeNested, "2"))

	_, err = src.Fetch(context.Background(), 32)
	var api *entropy.APIError
	fmt.Println(errors.As(err, &api), api.StatusCode, api.RetryAfter, entropy.Classify(err))

	blk, err := src.Fetch(context.Background(), 32) // the script is used up: healthy again
	fmt.Println(err, blk.Verifiable)
	// Output:
	// true 503 2s transient
	// <nil> true
}

// A simulator for another program (a client written in another language, a
// test of your own HTTP code): an API key with a balance in bytes, served on
// a loopback port. The entropy command's "sim" subcommand does this.
func ExampleNew() {
	s := sim.New(sim.WithKey("sk-demo-key", 64), sim.WithSeed(1))
	url, err := s.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	src, err := httpsource.New(url, httpsource.WithAPIKey("sk-demo-key"), httpsource.WithPublicKey(s.PublicKey()))
	if err != nil {
		log.Fatal(err)
	}
	_, err = src.Fetch(context.Background(), 64)
	fmt.Println(err)
	_, err = src.Fetch(context.Background(), 64) // the balance is spent
	fmt.Println(errors.Is(err, httpsource.ErrPaymentRequired), entropy.Classify(err))
	left, _ := s.Balance("sk-demo-key")
	fmt.Println(left, len(s.EntropyRequests()))
	// Output:
	// <nil>
	// true permanent
	// 0 2
}
