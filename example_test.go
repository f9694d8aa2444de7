package entropy_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"math/big"
	mrand "math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/provenrand/entropy"
	"golang.org/x/time/rate"
)

// exampleSource stands in for a real service (package httpsource or
// drandsource): every block is a fresh "job" with a proof it checked.
func exampleSource() entropy.Source {
	var seq atomic.Int64
	return entropy.SourceFunc(func(ctx context.Context, n int) (entropy.Block, error) {
		id := seq.Add(1)
		data := make([]byte, n)
		mrand.NewChaCha8([32]byte{byte(id)}).Read(data)
		return entropy.Block{Data: data, Source: "example", JobID: "job-" + strconv.FormatInt(id, 10),
			Verifiable: true, Time: time.Now()}, nil
	})
}

// A Provider is a drop-in io.Reader: io.ReadFull and crypto/rand.Int work
// as with crypto/rand.Reader.
func Example_dropIn() {
	p, err := entropy.New(exampleSource(), entropy.WithRateLimit(rate.Inf, 1))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	buf := make([]byte, 32)
	if _, err := io.ReadFull(p, buf); err != nil {
		log.Fatal(err)
	}
	n, err := rand.Int(p, big.NewInt(49))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(buf), n.Cmp(big.NewInt(49)) < 0)
	// Output: 32 true
}

// ReadLabelled says where the bytes came from: here, after the pool has
// filled, a span of one job of the source.
func ExampleProvider_ReadLabelled() {
	p, err := entropy.New(exampleSource(), entropy.WithRateLimit(rate.Inf, 1), entropy.WithPolicy(entropy.Defer))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b := make([]byte, 32)
	label, err := p.ReadLabelled(ctx, b)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(label.Provenance(), label.Spans[0].Source, label.Len())
	// Output: verifiable example 32
}

// ReadLabelledInto reuses one Label's spans from read to read: a loop of
// labelled reads that allocates nothing.
func ExampleProvider_ReadLabelledInto() {
	p, err := entropy.New(exampleSource(), entropy.WithRateLimit(rate.Inf, 1), entropy.WithPolicy(entropy.Defer))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b := make([]byte, 32)
	var label entropy.Label
	for range 3 {
		if err := p.ReadLabelledInto(ctx, b, &label); err != nil {
			log.Fatal(err)
		}
		fmt.Println(label.Provenance(), label.Spans[0].Source, label.Len())
	}
	// Output:
	// verifiable example 32
	// verifiable example 32
	// verifiable example 32
}

// Keys come from ReadSecret or SecretReader: the service that made the
// verifiable bytes cannot compute them.
func ExampleProvider_SecretReader() {
	p, err := entropy.New(exampleSource(), entropy.WithRateLimit(rate.Inf, 1), entropy.WithPolicy(entropy.Defer))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	pub, _, err := ed25519.GenerateKey(p.SecretReader())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(pub), p.Stats().DerivedReads)
	// Output: 32 1
}

// ReadFor draws the entropy of a named event once; asking again returns the
// same bytes, so a result cannot be re-rolled.
func ExampleProvider_ReadFor() {
	p, err := entropy.New(exampleSource(), entropy.WithRateLimit(rate.Inf, 1))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, b := make([]byte, 16), make([]byte, 16)
	if _, err := p.ReadFor(ctx, "draw-2026-11-22", a); err != nil {
		log.Fatal(err)
	}
	if _, err := p.ReadFor(ctx, "draw-2026-11-22", b); err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(a) == string(b))
	// Output: true
}

// Under Degrade a read never fails: when the source is down, the label
// says the bytes are a fallback, and why.
func ExampleProvider_ReadLabelled_fallback() {
	down := entropy.SourceFunc(func(ctx context.Context, n int) (entropy.Block, error) {
		return entropy.Block{}, &entropy.APIError{StatusCode: 503, RequestID: "req-42"}
	})
	p, err := entropy.New(down, entropy.WithRateLimit(rate.Inf, 1))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	label, err := p.ReadLabelled(context.Background(), make([]byte, 32))
	fmt.Println(err, label.Verifiable, label.Spans[0].Source)
	// Output: <nil> false crypto/rand
}
