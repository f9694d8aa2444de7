package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/redisfleet"
)

// fleetFlags are the flags of the request rate and of a fleet of replicas
// sharing it through Redis (read and draw).
type fleetFlags struct {
	rate  float64
	burst int
	url   string // --fleet redis://…
	name  string
	size  int
}

func (f *fleetFlags) add(fs *flag.FlagSet) {
	fs.Float64Var(&f.rate, "rate", 5, "requests per second to each source, retries included (for the whole fleet with --fleet)")
	intVar(fs, &f.burst, "burst", 2, "`B` requests the rate limit lets through at once")
	fs.StringVar(&f.url, "fleet", os.Getenv("ENTROPY_FLEET"), "share the rate limit, Retry-After holds and breaker with the other replicas through the Redis at `URL` (redis://[user:password@]host:port/db; env ENTROPY_FLEET)")
	fs.StringVar(&f.name, "fleet-name", redisfleet.DefaultName, "the fleet's `name`: the prefix of its Redis keys, the same for every replica that shares the quota")
	intVar(fs, &f.size, "fleet-size", 1, "replicas in the fleet: while Redis is unreachable each sends at most 1/`N` of the rate")
}

// options returns the Provider options of the flags, and what to close
// after the Provider. given are the flags the command line set: --fleet-name
// and --fleet-size without a fleet would have no effect, and are refused.
func (f *fleetFlags) options(given map[string]bool) ([]entropy.Option, func() error, error) {
	if math.IsNaN(f.rate) || f.rate <= 0 {
		return nil, nil, badFlagf("--rate %v must be a positive number of requests per second", f.rate)
	}
	if f.burst < 1 {
		return nil, nil, badFlagf("--burst %d must be at least 1", f.burst)
	}
	opts := []entropy.Option{entropy.WithRateLimit(rate.Limit(f.rate), f.burst)}
	if f.url == "" {
		for _, name := range []string{"fleet-name", "fleet-size"} {
			if given[name] {
				return nil, nil, badFlagf("--%s has no effect without --fleet (or ENTROPY_FLEET): give --fleet redis://…, or leave --%s out", name, name)
			}
		}
		return opts, func() error { return nil }, nil
	}
	if f.size < 1 {
		return nil, nil, badFlagf("--fleet-size %d must be at least 1", f.size)
	}
	if !strings.HasPrefix(f.url, "redis://") && !strings.HasPrefix(f.url, "rediss://") {
		return nil, nil, badFlagf("--fleet: want a redis:// or rediss:// URL")
	}
	client, err := redisfleet.NewClient(f.url)
	if err != nil {
		return nil, nil, badFlag(err)
	}
	fl := redisfleet.New(client, redisfleet.WithName(f.name), redisfleet.WithFleetSize(f.size))
	if err := fl.Err(); err != nil {
		_ = client.Close()
		return nil, nil, badFlag(err)
	}
	return append(opts, entropy.WithFleet(fl)), client.Close, nil
}

// follow is read --follow: it reads n bytes every interval until ctx ends,
// and prints a status line to stderr every period, so that an operator sees
// the rate, the holds, the breaker and the fleet at work. It ends with the
// service's error when every source failed permanently (a refused key, a
// public key that is not the service's): that is no load to watch.
func follow(ctx context.Context, p *provider, n int, interval, period time.Duration, stderr io.Writer) error {
	buf := make([]byte, n)
	read := time.NewTicker(interval)
	defer read.Stop()
	status := time.NewTicker(period)
	defer status.Stop()
	var verifiable, fallback, failed uint64
	var lastReq uint64
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-status.C:
			st := p.Stats()
			var req uint64
			for _, s := range st.Sources {
				req += s.Requests
			}
			line := fmt.Sprintf("entropy read: %s reads verifiable=%d fallback=%d failed=%d requests=%d (%.1f/s) pooled=%d",
				now.UTC().Format("15:04:05"), verifiable, fallback, failed, req, float64(req-lastReq)/now.Sub(last).Seconds(), st.Pooled)
			for _, s := range st.Sources {
				line += fmt.Sprintf(" | %s breaker=%s", s.Name, s.Breaker)
				if now.Before(s.HoldUntil) {
					line += fmt.Sprintf(" held=%s", s.HoldUntil.Sub(now).Round(100*time.Millisecond))
				}
				if s.LastError != nil {
					line += fmt.Sprintf(" last-error=%q", s.LastError.Error())
				}
			}
			if fl := st.Fleet; fl != nil {
				state := "shared"
				if !fl.Shared {
					state = "local"
				}
				line += fmt.Sprintf(" | fleet %s=%s errors=%d", fl.Name, state, fl.Errors)
			}
			if _, err := fmt.Fprintln(stderr, line); err != nil {
				// The status lines are all --follow prints: with
				// nowhere to print them (a closed pipe), stop.
				return fmt.Errorf("cannot write the status line: %w", err)
			}
			lastReq, last = req, now
		case <-read.C:
			// A read that waits (--policy defer) waits at most until the
			// next status line is due, so that the lines go on.
			rctx, cancel := context.WithTimeout(ctx, period)
			lb, err := p.ReadLabelled(rctx, buf)
			cancel()
			clear(buf)
			switch {
			case err != nil && ctx.Err() != nil:
				return nil
			case err != nil && errors.Is(err, entropy.ErrClosed):
				return err
			case p.hopeless(err):
				// A service that refuses the key or signs with another
				// is a misconfiguration, not an outage: an error under
				// every policy, as for a single read.
				return err
			case err != nil && p.hopeless(p.Stats().Permanent):
				// The read waited in vain on such a service.
				return p.Stats().Permanent
			case err != nil:
				failed++
			case lb.Verifiable:
				verifiable++
			case p.hopeless(lb.Reason):
				return lb.Reason
			default:
				fallback++
			}
		}
	}
}
