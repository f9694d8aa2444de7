package entropy_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/drandsource"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/sim"
)

// The README's first code block: a src from the embedded simulator (to try
// the library without a network or an account), a Provider over it, and
// the first read, which is verifiable.
func Example() {
	s := sim.New() // 1. to try it: the embedded simulator, on a loopback port
	defer s.Close()
	src, err := s.Source()
	if err != nil {
		log.Fatal(err)
	}
	// 2 requests a second, bursts of 1: every request, retries included, is
	// charged to the API key and counted by the service's own rate limit.
	p, err := entropy.New(src, entropy.WithRateLimit(2, 1))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	if err := p.WaitReady(ctx); err != nil {
		log.Fatal(err) // a refused API key or a wrong public key shows here
	}

	buf := make([]byte, 32)
	label, err := p.ReadLabelled(ctx, buf) // label.Spans: {Source, JobID, Offset, Length}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(label.Verifiable, label.Spans[0].Source)
	n, err := io.ReadFull(p, buf) // drop-in io.Reader
	fmt.Println(n, err)
	// Output:
	// true simulator
	// 32 <nil>
}

// A service of the reference protocol (docs/protocol.md): its URL, the API
// key (from the environment, never from code) and its Ed25519 public key,
// pinned. WaitReady then tells a misconfiguration (a key the service
// refuses, a public key that is not the service's) from an outage before
// the first read. The simulator stands in for the service here.
func Example_httpsource() {
	service := sim.New(sim.WithKey("sk-example", 1<<20))
	if _, err := service.Start(); err != nil {
		log.Fatal(err)
	}
	defer service.Close()
	os.Setenv("ENTROPY_API_KEY", "sk-example")
	var pub ed25519.PublicKey = service.PublicKey() // published by the service
	url := service.URL()

	src, err := httpsource.New(url,
		httpsource.WithAPIKey(os.Getenv("ENTROPY_API_KEY")),
		httpsource.WithPublicKey(pub),
	)
	if err != nil {
		log.Fatal(err)
	}
	p, err := entropy.New(src, entropy.WithRateLimit(2, 1)) // what the key's plan allows
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitReady(ctx); err != nil {
		log.Fatal(err) // a 401, 402, 403 or a wrong public key shows here
	}
	label, err := p.ReadLabelled(ctx, make([]byte, 32))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(label.Verifiable, label.Spans[0].Source)
	// Output: true quantropy
}

// The drand public beacon: verifiable by anyone with the chain's key, and
// public to the whole world, so fit for draws and never for keys. A round
// holds 32 bytes and comes every 3 seconds (quicknet), hence the small
// fetches and the low rate. This example needs the network, so it is only
// compiled.
func Example_drand() {
	src, err := drandsource.New(drandsource.Quicknet(), drandsource.PublicRelays())
	if err != nil {
		log.Fatal(err)
	}
	p, err := entropy.New(src, entropy.WithFetchSize(32), entropy.WithRateLimit(1, 1))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitReady(ctx); err != nil {
		log.Fatal(err)
	}
	label, err := p.ReadLabelled(ctx, make([]byte, 32))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(label.Verifiable, label.Spans[0].Public)
}

// WaitReady returns the service's permanent error at once instead of
// letting reads fall back in silence: here the service refuses the key.
func ExampleProvider_WaitReady() {
	service := sim.New()
	url, err := service.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer service.Close()
	src, err := httpsource.New(url, httpsource.WithAPIKey("not-a-key-of-this-service"),
		httpsource.WithPublicKey(service.PublicKey()))
	if err != nil {
		log.Fatal(err)
	}
	p, err := entropy.New(src)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	err = p.WaitReady(context.Background())
	fmt.Println(errors.Is(err, entropy.ErrPermanent), errors.Is(err, httpsource.ErrUnauthorized))
	fmt.Println(p.Stats().Permanent != nil)
	// Output:
	// true true
	// true
}

// The warm start: reads right after New wait up to d for the first block
// instead of falling back at once. WithWarmStart(0) turns it off.
func ExampleWithWarmStart() {
	s := sim.New()
	defer s.Close()
	src, err := s.Source()
	if err != nil {
		log.Fatal(err)
	}
	p, err := entropy.New(src, entropy.WithWarmStart(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	buf := make([]byte, 16)
	if _, err := p.Read(buf); err != nil {
		log.Fatal(err)
	}
	st := p.Stats()
	fmt.Println(st.VerifiableBytes, st.FallbackBytes)
	// Output: 16 0
}

// TestREADMEFirstBlockIsCompiled keeps the README's first Go block and the
// examples above in step: every line of the block (comments and "{ ... }"
// elisions aside) is a line of this file, compiled and run by go test.
func TestREADMEFirstBlockIsCompiled(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile("example_start_test.go")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "```go\n")
	if start < 0 {
		t.Fatal("README has no Go block")
	}
	block := text[start+len("```go\n"):]
	block = block[:strings.Index(block, "```")]
	lines := 0
	for _, line := range strings.Split(block, "\n") {
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(strings.ReplaceAll(line, "{ ... }", "{"))
		if line == "" {
			continue
		}
		lines++
		if !strings.Contains(string(self), line) {
			t.Errorf("README line %q is in no example", line)
		}
	}
	if lines < 10 {
		t.Errorf("only %d code lines in README's first Go block", lines)
	}
}
