package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"net"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/provenrand/entropy/entropymetrics"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/internal/loopback"
	"golang.org/x/time/rate"

	"github.com/provenrand/entropy/sim"
)

// demoAPIKey is the key the standalone simulator accepts unless told
// otherwise. It guards nothing: the simulator serves only loopback.
const demoAPIKey = "sim-demo-key"

func init() {
	register(&command{
		name:    "sim",
		usage:   "sim [--addr 127.0.0.1:8080] [--faults drop=0.1,status=0.05,...] [--seed N] [--metrics ADDR]",
		summary: "serve the entropy simulator on a loopback address until interrupted",
		run:     runSim,
	})
}

// runSim is the sim command.
func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := commands["sim"]
	fs := newFlagSet(c)
	addr := fs.String("addr", "127.0.0.1:8080", "loopback `address` to listen on (port 0 picks a free one)")
	faults := fs.String("faults", "", "random faults as `kind=probability,...`; kinds: "+faultKindList())
	seed := int64Flag(fs, "seed", 0, "make keys, jobs and bytes deterministic from the seed `N` (0: random)")
	apiKey := fs.String("api-key", demoAPIKey, "the API `key` the simulator accepts")
	balance := int64Flag(fs, "balance", 1<<40, "the key's balance in `bytes` (402 once spent)")
	rateLimit := fs.Float64("rate", 0, "requests per second before 429 (0: no limit)")
	burst := intFlag(fs, "burst", 5, "burst `B` of the rate limit")
	latency := fs.Duration("latency", 0, "delay of every entropy answer")
	queue := fs.Float64("queue", 0, "fraction of jobs answered 202 queued")
	metricsAddr := fs.String("metrics", "", "serve the simulator's metrics on http://`ADDR`/metrics (Prometheus format)")
	if code, done := parseFlags(c, fs, args, stdout, stderr); done {
		return code
	}
	probs, err := sim.ParseFaults(*faults)
	if err != nil {
		return usageError(stderr, c, err)
	}
	switch {
	case *apiKey == "":
		return usageError(stderr, c, fmt.Errorf("--api-key must not be empty"))
	case len(*apiKey) < httpsource.MinAPIKeyLen:
		// No client would send it (httpsource refuses it, to keep it out of errors).
		return usageError(stderr, c, fmt.Errorf("--api-key of %d bytes is too short: want at least %d, as clients do", len(*apiKey), httpsource.MinAPIKeyLen))
	case *balance < 0:
		return usageError(stderr, c, fmt.Errorf("--balance %d must not be negative", *balance))
	case !(*queue >= 0 && *queue <= 1): // NaN too
		return usageError(stderr, c, fmt.Errorf("--queue %v must be in 0..1", *queue))
	case *latency < 0:
		return usageError(stderr, c, fmt.Errorf("--latency %v must not be negative", *latency))
	case *rateLimit < 0 || math.IsNaN(*rateLimit) || math.IsInf(*rateLimit, 0):
		return usageError(stderr, c, fmt.Errorf("--rate %v: want requests per second, 0 for no limit", *rateLimit))
	case *rateLimit > 0 && *burst < 1:
		return usageError(stderr, c, fmt.Errorf("--burst %d must be at least 1", *burst))
	case *rateLimit == 0 && setFlags(fs)["burst"]:
		return usageError(stderr, c, fmt.Errorf("--burst has no effect without --rate: give --rate R, or leave --burst out"))
	}

	opts := []sim.Option{sim.WithKey(*apiKey, *balance), sim.WithLatency(*latency), sim.WithQueuedJobs(*queue, 1)}
	if *seed != 0 {
		opts = append(opts, sim.WithSeed(*seed))
	}
	if *rateLimit > 0 {
		opts = append(opts, sim.WithRateLimit(rate.Limit(*rateLimit), *burst))
	}
	s := sim.New(opts...)
	faultSeed := *seed
	if faultSeed == 0 {
		faultSeed = time.Now().UnixNano()
	}
	if err := s.SetRandomFaults(faultSeed, probs); err != nil {
		return usageError(stderr, c, err)
	}
	// An address the simulator may not serve on is a bad command line, as
	// every other bad value of its flags is; only listening can fail.
	if host, _, err := net.SplitHostPort(*addr); err != nil {
		return usageError(stderr, c, fmt.Errorf("--addr %q: %w", *addr, err))
	} else if !loopback.Is(host) {
		return usageError(stderr, c, fmt.Errorf("--addr %q is not loopback: the simulator serves only this machine", *addr))
	}
	url, err := s.Listen(*addr)
	if err != nil {
		return fail(stderr, c, err)
	}
	defer s.Close()
	if *metricsAddr != "" {
		ms, err := serveMetrics(*metricsAddr, func(mp metric.MeterProvider) (metric.Registration, error) {
			return entropymetrics.RegisterSimulator(s, entropymetrics.WithMeterProvider(mp))
		})
		if err != nil {
			return fail(stderr, c, err)
		}
		defer ms.Close()
		fmt.Fprintf(stderr, "entropy sim: metrics on %s\n", ms.url)
	}

	// Nobody can use a simulator whose address and keys were not shown: stop
	// at once if they cannot be written.
	shown := &errWriter{w: stdout}
	stdout = shown
	fmt.Fprintf(stdout, "simulator serving on %s (Ctrl-C to stop)\n", url)
	fmt.Fprintf(stdout, "  export ENTROPY_URL=%s\n", url)
	if *apiKey == demoAPIKey {
		fmt.Fprintf(stdout, "  export ENTROPY_API_KEY=%s\n", demoAPIKey)
	} else {
		fmt.Fprintln(stdout, "  export ENTROPY_API_KEY=<the key given with --api-key>")
	}
	fmt.Fprintf(stdout, "  export ENTROPY_PUBLIC_KEY=%s\n", base64.StdEncoding.EncodeToString(s.PublicKey()))
	fmt.Fprintf(stdout, "  export ENTROPY_SOURCE_NAME=%s\n", sim.SourceName)
	if len(probs) > 0 {
		fmt.Fprintf(stdout, "  faults: %s\n", *faults)
	}
	if shown.err != nil {
		return fail(stderr, c, fmt.Errorf("cannot write the simulator's address: %w", shown.err))
	}
	<-ctx.Done()
	fmt.Fprintf(stdout, "simulator stopped after %d requests\n", len(s.Requests()))
	return exitOK
}

// faultKindList names the fault kinds for the usage text.
func faultKindList() string {
	var out string
	for i, k := range sim.FaultKinds() {
		if i > 0 {
			out += ", "
		}
		out += k.String()
	}
	return out
}
