package httpsource_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/sim"
)

// Fetch one signed block from a service of the reference protocol; here the
// simulator stands in for the service.
func ExampleSource_Fetch() {
	service := sim.New(sim.WithKey("sk-example", 1<<20))
	url, err := service.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer service.Close()

	src, err := httpsource.New(url,
		httpsource.WithAPIKey("sk-example"),
		httpsource.WithPublicKey(service.PublicKey()), // pin the service's key
	)
	if err != nil {
		log.Fatal(err)
	}
	b, err := src.Fetch(context.Background(), 32)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(b.Data), b.Source, b.Verifiable)
	// The signature binds the job to this request: its nonce, size and
	// timestamp travel in the block's Evidence.
	e := b.Evidence
	fmt.Println(httpsource.VerifySignatureV2(service.PublicKey(), b.JobID, e.Nonce, e.Size, e.Timestamp, b.Data, b.Proof))
	// Output:
	// 32 quantropy true
	// true
}

// A Provider over the HTTP source: an io.Reader whose every read comes with
// its provenance.
func ExampleSource_provider() {
	service := sim.New(sim.WithKey("sk-example", 1<<20))
	url, err := service.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer service.Close()

	src, err := httpsource.New(url, httpsource.WithAPIKey("sk-example"), httpsource.WithPublicKey(service.PublicKey()))
	if err != nil {
		log.Fatal(err)
	}
	p, err := entropy.New(src)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitReady(ctx); err != nil {
		log.Fatal(err)
	}
	b := make([]byte, 16)
	label, err := p.ReadLabelled(ctx, b)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(label.Provenance(), label.Spans[0].Source, label.Len())
	// Output: verifiable quantropy 16
}

// Fetch several jobs in one request: the items that passed every check come
// back, and a *httpsource.BatchError names the others (a partial batch
// failure). A Provider over the source refills this way by default.
func ExampleSource_FetchBatch() {
	service := sim.New(sim.WithKey("sk-example", 1<<20))
	src, err := service.Source() // a client wired to the simulator
	if err != nil {
		log.Fatal(err)
	}
	defer service.Close()
	// The second item of the next batch fails on the service's side.
	service.ScriptItems(sim.Kind(sim.FaultNone), sim.JobFailure("QuantumComputerError"))

	blocks, err := src.FetchBatch(context.Background(), []int{32, 32, 32})
	fmt.Println(len(blocks), "good blocks")
	var be *httpsource.BatchError
	if errors.As(err, &be) {
		for _, it := range be.Items {
			fmt.Println("item", it.Index, it.Code, entropy.Classify(it.Err))
		}
	}
	// Output:
	// 2 good blocks
	// item 1 QuantumComputerError transient
}

// Check a job after the fact, as an auditor does, from its ID alone.
func ExampleSource_Job() {
	service := sim.New(sim.WithKey("sk-example", 1<<20))
	src, err := service.Source() // a client wired to the simulator
	if err != nil {
		log.Fatal(err)
	}
	defer service.Close()

	b, err := src.Fetch(context.Background(), 8)
	if err != nil {
		log.Fatal(err)
	}
	job, err := src.Job(context.Background(), b.JobID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(job.Status, job.Verified, len(job.Data))
	// Output: completed true 8
}

// Share kept-alive connections between requests: the application takes
// charge of the standard log, where net/http writes bytes a service sends on
// an idle connection (which may echo the API key).
func ExampleWithKeepAlive() {
	service := sim.New(sim.WithKey("sk-example", 1<<20))
	url, err := service.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer service.Close()

	log.SetOutput(io.Discard) // or a writer that redacts what it must
	defer log.SetOutput(os.Stderr)
	src, err := httpsource.New(url,
		httpsource.WithAPIKey("sk-example"),
		httpsource.WithPublicKey(service.PublicKey()),
		httpsource.WithKeepAlive(),
	)
	if err != nil {
		log.Fatal(err)
	}
	for range 2 {
		b, err := src.Fetch(context.Background(), 32)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(len(b.Data), b.Verifiable)
	}
	// Output:
	// 32 true
	// 32 true
}
