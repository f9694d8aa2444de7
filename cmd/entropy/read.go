package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/entropymetrics"
)

// maxReadSize bounds entropy read -n.
const maxReadSize = 1 << 20

func init() {
	register(&command{
		name:    "read",
		usage:   "read [-n N] [--format hex|base64|raw] [--label] [--journal FILE|postgres://URL] [--policy degrade|defer|fail] [--url U] [--public-key B64] [--metrics ADDR] [--rate R] [--burst B] [--fleet redis://…] [--follow [--every D] [--status-every D]]",
		summary: "print N bytes of entropy and, with --label, where they came from",
		run:     runRead,
	})
}

// runRead is the read command.
func runRead(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := commands["read"]
	fs := newFlagSet(c)
	n := intFlag(fs, "n", 32, "number `N` of bytes to read (1.."+fmt.Sprint(maxReadSize)+")")
	format := fs.String("format", "hex", "output format: hex, base64 or raw (raw writes the label to stderr)")
	label := fs.Bool("label", false, "also print the label (provenance) of the bytes as JSON")
	journalPath := addJournalFlag(fs)
	metricsAddr := fs.String("metrics", "", "serve the Provider's metrics on http://`ADDR`/metrics (Prometheus format) while reading, and after it until interrupted")
	followF := fs.Bool("follow", false, "keep reading -n bytes every --every until interrupted, printing a status line (rate, holds, breaker, fleet) to stderr every --status-every; the bytes are not printed")
	every := fs.Duration("every", 10*time.Millisecond, "with --follow, the time between two reads")
	statusEvery := fs.Duration("status-every", time.Second, "with --follow, the time between two status lines")
	var sf sourceFlags
	sf.add(fs)
	if code, done := parseFlags(c, fs, args, stdout, stderr); done {
		return code
	}
	if *n < 1 || *n > maxReadSize {
		return usageError(stderr, c, fmt.Errorf("-n %d must be in 1..%d", *n, maxReadSize))
	}
	given := setFlags(fs)
	for _, name := range []string{"every", "status-every"} {
		if given[name] && !*followF {
			return usageError(stderr, c, fmt.Errorf("--%s has no effect without --follow: add --follow, or leave --%s out", name, name))
		}
	}
	if given["timeout"] && *followF {
		// Each read of --follow waits at most --status-every.
		return usageError(stderr, c, errors.New("--timeout has no effect with --follow: each read waits at most --status-every"))
	}
	for _, name := range []string{"label", "format"} {
		if given[name] && *followF {
			return usageError(stderr, c, fmt.Errorf("--%s has no effect with --follow: it prints no bytes; leave --%s out", name, name))
		}
	}
	var encode func([]byte) string
	switch *format {
	case "hex":
		encode = func(b []byte) string { return hex.EncodeToString(b) + "\n" }
	case "base64":
		encode = func(b []byte) string { return base64.StdEncoding.EncodeToString(b) + "\n" }
	case "raw":
		encode = func(b []byte) string { return string(b) }
	default:
		return usageError(stderr, c, fmt.Errorf("--format %q: want hex, base64 or raw", *format))
	}

	var popts []entropy.Option
	if *journalPath != "" {
		j, err := openJournal(ctx, *journalPath)
		if err != nil {
			return fail(stderr, c, err)
		}
		defer j.close()
		popts = append(popts, entropy.WithJournal(j.Journal))
	}
	p, err := sf.open(*n, popts...)
	if err != nil {
		return fail(stderr, c, err)
	}
	defer p.Close()
	var ms *metricsServer
	if *metricsAddr != "" {
		if ms, err = serveMetrics(*metricsAddr, func(mp metric.MeterProvider) (metric.Registration, error) {
			return entropymetrics.Register(p.Provider, entropymetrics.WithMeterProvider(mp))
		}); err != nil {
			return fail(stderr, c, err)
		}
		defer ms.Close()
		fmt.Fprintf(stderr, "entropy read: metrics on %s\n", ms.url)
	}
	interrupted := ctx
	if *followF {
		if *every <= 0 || *statusEvery <= 0 {
			return usageError(stderr, c, fmt.Errorf("--every %v and --status-every %v must be positive", *every, *statusEvery))
		}
		fmt.Fprintf(stderr, "entropy read: following: %d bytes every %v until interrupted\n", *n, *every)
		if err := follow(interrupted, p, *n, *every, *statusEvery, stderr); err != nil {
			return fail(stderr, c, err)
		}
		if *journalPath != "" {
			return journalKept(stderr, c, p, journalName(*journalPath))
		}
		return exitOK
	}

	ctx, cancel := context.WithTimeout(ctx, sf.timeout)
	defer cancel()
	// Let the pool fill before reading, so that the first run of the command
	// prints verifiable bytes rather than an instant fallback. A timeout or an
	// outage here is not yet an error: the read applies the policy (under
	// degrade it falls back, and its label says so).
	if err := waitPool(ctx, p.Provider, *n, p.policy); errors.Is(err, context.Canceled) || p.hopeless(err) {
		return fail(stderr, c, err)
	}
	buf := make([]byte, *n)
	lbl, err := p.ReadLabelled(ctx, buf)
	if err != nil {
		return fail(stderr, c, p.withCause(err))
	}
	if !lbl.Verifiable && p.hopeless(lbl.Reason) {
		// Fallback bytes because the service refused us: not an outage.
		clear(buf)
		return fail(stderr, c, lbl.Reason)
	}
	if _, err := io.WriteString(stdout, encode(buf)); err != nil {
		return fail(stderr, c, err)
	}
	if *label {
		js, err := json.Marshal(lbl)
		if err != nil {
			return fail(stderr, c, err)
		}
		out := stdout
		if *format == "raw" {
			out = stderr
		}
		// A label lost on stderr is lost output, as one lost on stdout is.
		if _, err := fmt.Fprintf(out, "%s\n", js); err != nil {
			return fail(stderr, c, err)
		}
	}
	if !lbl.Verifiable && !*label {
		fmt.Fprintf(stderr, "entropy read: warning: bytes are %s, not verifiable: %s\n", lbl.Provenance(), oneLine(lbl.Reason))
	}
	if ms != nil {
		// The figures of the read stay there to be scraped.
		fmt.Fprintf(stderr, "entropy read: serving metrics on %s until interrupted\n", ms.url)
		<-interrupted.Done()
	}
	if *journalPath != "" {
		// The bytes are printed; a record the journal was asked to keep and
		// did not is an error all the same (a full disk), as for draw.
		return journalKept(stderr, c, p, journalName(*journalPath))
	}
	return exitOK
}

// usageError prints a bad-usage line and returns exitUsage.
func usageError(stderr io.Writer, c *command, err error) int {
	return failWith(stderr, c, badFlag(err))
}

// waitPool waits until the pool of p holds n bytes, ctx ends, or every
// source has failed permanently (then waiting longer cannot help). Under
// degrade and fail it also stops when a source request fails: an outage is
// for the policy to answer at once, not a reason to wait out --timeout (the
// read that follows still waits for the refill round's retries, as every
// read right after entropy.New does).
func waitPool(ctx context.Context, p *entropy.Provider, n int, pol entropy.Policy) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		st := p.Stats()
		if st.Pooled >= n {
			return nil
		}
		if st.Permanent != nil {
			// Every source failed permanently: a misconfiguration.
			return st.Permanent
		}
		permanent := len(st.Sources) > 0
		for _, s := range st.Sources {
			if s.LastError == nil || entropy.Classify(s.LastError) != entropy.Permanent {
				permanent = false
			}
		}
		if permanent {
			return st.Sources[0].LastError
		}
		if pol != entropy.Defer && st.Unavailable != nil && !errors.Is(st.Unavailable, entropy.ErrPoolEmpty) {
			return st.Unavailable
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
