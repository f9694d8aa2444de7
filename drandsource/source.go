package drandsource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/internal/evidence"
	"github.com/provenrand/entropy/internal/loopback"
	"github.com/provenrand/entropy/internal/retryafter"
)

// maxBody bounds every body read from a relay. A beacon is about 400 bytes
// and chain info about 600; anything longer is not a drand answer.
const maxBody = 16 << 10

// defaultTimeout bounds one request of the default HTTP client. Waiting for a
// round to be due is not a request: it is bounded by the caller's context.
const defaultTimeout = 20 * time.Second

// PublicRelays returns the HTTPS relays of the League of Entropy that serve
// both mainnet chains. Each call returns a fresh slice.
func PublicRelays() []string {
	return []string{
		"https://api.drand.sh",
		"https://api2.drand.sh",
		"https://api3.drand.sh",
		"https://drand.cloudflare.com",
	}
}

// Option configures a Source.
type Option func(*config)

// config is what the options set.
type config struct {
	client        *http.Client
	clock         func() time.Time
	name          string
	allowInsecure bool
}

// WithHTTPClient makes the Source send its requests with c. The default is a
// client with a 20-second timeout per request whose redirects must satisfy
// the same rules as the relay URLs. A nil c keeps the default.
func WithHTTPClient(c *http.Client) Option { return func(cf *config) { cf.client = c } }

// WithClock makes the Source read the time from clk instead of the system
// clock, for tests. It decides which round is due; waits still run on real
// timers. It takes the entropy.Clock that every WithClock of the module
// takes; entropy.NowFunc adapts a plain time function.
func WithClock(clk entropy.Clock) Option {
	return func(cf *config) {
		if clk != nil {
			cf.clock = clk.Now
		}
	}
}

// WithName sets the Source name that blocks, and so labels, carry. The
// default is "drand/" followed by the chain's beacon ID: "drand/quicknet" or
// "drand/default".
func WithName(name string) Option { return func(cf *config) { cf.name = name } }

// WithAllowInsecureHTTP allows relay URLs with plain http to any host. By
// default plain http is accepted for loopback hosts only (a local relay or a
// test); every other relay must use https. Beacons are verified either way,
// so plain http risks availability and privacy, not integrity.
func WithAllowInsecureHTTP() Option { return func(cf *config) { cf.allowInsecure = true } }

// Source is an entropy.Source that serves verified drand rounds, one round
// (32 bytes of public randomness) per Fetch. It is safe for concurrent use.
// Its bytes are public, as every beacon's are: fit for draws, never for keys
// or secrets (see the package documentation).
//
// A Source never hands out the same round twice, through Fetch or FetchRound:
// it asks only for rounds after the latest one it has handed out, and no two
// calls fetch the same round at once. The guarantee holds per Source; two
// Sources over the same chain know nothing of each other.
type Source struct {
	chain  ChainInfo
	relays []*relay
	client *http.Client
	now    func() time.Time
	name   string

	mu sync.Mutex
	// cursor is the highest round handed out; no round ≤ cursor is handed
	// out again. Guarded by mu.
	cursor uint64
	// pending holds the rounds being fetched, so that no two calls fetch
	// the same round. Guarded by mu.
	pending map[uint64]struct{}

	// after, if set, replaces the real timer of waitUntil: tests with an
	// accelerated clock scale the waits with it.
	after func(time.Duration) <-chan time.Time
}

// relay is one relay base URL and whether its chain info matched the pin.
type relay struct {
	base   string      // scheme://host[/prefix], no trailing slash
	infoOK atomic.Bool // the relay's /info matched the pinned chain
}

// New returns a Source for chain (normally Quicknet() or Default()) read
// through relays, tried in the order given when one fails. chain must pass
// Validate: it is the pin that every relay's answers are checked against.
// Relay URLs are https, or plain http to a loopback host unless
// WithAllowInsecureHTTP is given; they carry no credentials, query or
// fragment. New does no I/O: each relay's chain info is fetched and checked
// before the first beacon of that relay is used.
func New(chain ChainInfo, relays []string, opts ...Option) (*Source, error) {
	chain = chain.clone()
	if err := chain.Validate(); err != nil {
		return nil, err
	}
	// Decode the pinned key once, so that a bad pin fails here, not at the
	// first fetch.
	var err error
	switch chain.Scheme {
	case SchemeUnchainedG1:
		_, err = decodeG2(chain.PublicKey, "public key")
	case SchemeChained:
		_, err = decodeG1(chain.PublicKey, "public key")
	}
	if err != nil {
		return nil, fmt.Errorf("drandsource: chain %q: %w", chain.name(), err)
	}
	cf := config{name: "drand/" + chain.name()}
	for _, o := range opts {
		if o != nil {
			o(&cf)
		}
	}
	if len(relays) == 0 {
		return nil, errors.New("drandsource: no relay URL given (PublicRelays lists the public ones)")
	}
	s := &Source{
		chain:   chain,
		client:  cf.client,
		now:     cf.clock,
		name:    cf.name,
		pending: make(map[uint64]struct{}),
	}
	for i, raw := range relays {
		base, err := checkRelayURL(raw, cf.allowInsecure)
		if err != nil {
			return nil, fmt.Errorf("drandsource: relay %d: %w", i, err)
		}
		s.relays = append(s.relays, &relay{base: base})
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.name == "" {
		return nil, errors.New("drandsource: empty source name")
	}
	if s.client == nil {
		allow := cf.allowInsecure
		s.client = &http.Client{
			Timeout: defaultTimeout,
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if len(via) >= 3 {
					return errors.New("more than 3 redirects")
				}
				_, err := checkRelayURL(req.URL.String(), allow)
				return err
			},
		}
	}
	return s, nil
}

// checkRelayURL checks one relay URL and returns its base without a trailing
// slash. Its errors never repeat a URL that carries credentials.
func checkRelayURL(raw string, allowInsecure bool) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", errors.New("not a valid URL")
	}
	if u.User != nil {
		return "", errors.New("URL carries credentials; relays need none")
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return "", fmt.Errorf("%s: scheme must be https or http", u.Redacted())
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("%s: no host", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", fmt.Errorf("%s: a relay URL has no query or fragment", u.Redacted())
	case u.Scheme == "http" && !allowInsecure && !loopback.Is(u.Hostname()):
		return "", fmt.Errorf("%s: plain http is allowed to loopback hosts only (see WithAllowInsecureHTTP)", u.Redacted())
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// Name returns the Source name its blocks carry.
func (s *Source) Name() string { return s.name }

// Chain returns a copy of the pinned chain parameters.
func (s *Source) Chain() ChainInfo { return s.chain.clone() }

// RoundAt returns the chain's latest round due at t; see ChainInfo.RoundAt.
func (s *Source) RoundAt(t time.Time) uint64 { return s.chain.RoundAt(t) }

// RoundTime returns the time round is due; see ChainInfo.RoundTime.
func (s *Source) RoundTime(round uint64) time.Time { return s.chain.RoundTime(round) }

// FirstRoundAfter returns the first round due strictly after t; see
// ChainInfo.FirstRoundAfter.
func (s *Source) FirstRoundAfter(t time.Time) uint64 { return s.chain.FirstRoundAfter(t) }

// Fetch returns the next round this Source has not handed out: the round due
// now, or, if that one was already handed out, the next one, waiting on ctx
// until it is due (or returning a *RoundNotDueError at once if ctx's
// deadline comes first). It never asks for "latest", which could return a
// round already served.
//
// The block's Data is the first min(n, 32) bytes of the round's verified
// randomness, JobID the round number in decimal, Proof the BLS signature,
// Time the round's due time, and Verifiable true. Anyone can check it with
// Verify and the pinned chain; and anyone can read it: beacon randomness is
// public, fit for draws and never for keys or secrets.
//
// When a relay fails, answers with a round other than the one asked for, or
// with a beacon that does not verify, the next relay is tried. When ctx has
// a deadline, each relay but the last gets an equal share of the time left,
// so that a relay that never answers does not keep the others from being
// asked. The error of a Fetch that got nothing lists every relay's failure,
// and entropy.RetryAfter reads from it the longest Retry-After any relay
// sent. Errors match
// ErrBadProof, ErrMalformed, *entropy.APIError (425 Too
// Early: the relay has not produced the round yet, transient) or
// *ConnError.
func (s *Source) Fetch(ctx context.Context, n int) (entropy.Block, error) {
	if n <= 0 {
		return entropy.Block{}, fmt.Errorf("drandsource: Fetch of %d bytes", n)
	}
	if err := s.usable(ctx); err != nil {
		return entropy.Block{}, err
	}
	s.mu.Lock()
	round := max(s.cursor, s.chain.RoundAt(s.now()))
	if round == s.cursor {
		round++ // past the last round served; 0 once the last round there is was
	}
	for round != 0 {
		if _, busy := s.pending[round]; !busy {
			break
		}
		round++
	}
	if round == 0 {
		cursor := s.cursor
		s.mu.Unlock()
		return entropy.Block{}, fmt.Errorf("drandsource: %s has no round left after round %d: %w", s.name, cursor, ErrRoundServed)
	}
	s.pending[round] = struct{}{}
	s.mu.Unlock()
	return s.fetchReserved(ctx, round, n)
}

// FetchRound returns the given round, waiting on ctx until it is due (or
// returning a *RoundNotDueError at once if ctx's deadline comes first), as a
// block of all its 32 bytes (see Fetch for the fields). It is how a draw
// reads the round it committed to in advance, typically
// FirstRoundAfter(a published time).
//
// A round at or before the latest round this Source has handed out, or one
// another call is fetching, is refused with ErrRoundServed: its bytes may
// have gone to another use. A draw should therefore commit to a round in the future,
// or read its round through a Source of its own.
func (s *Source) FetchRound(ctx context.Context, round uint64) (entropy.Block, error) {
	if round == 0 {
		return entropy.Block{}, fmt.Errorf("drandsource: round 0 does not exist (rounds start at 1): %w", ErrMalformed)
	}
	if err := s.usable(ctx); err != nil {
		return entropy.Block{}, err
	}
	s.mu.Lock()
	_, busy := s.pending[round]
	if busy || round <= s.cursor {
		cursor := s.cursor
		s.mu.Unlock()
		return entropy.Block{}, fmt.Errorf("drandsource: %s round %d (this source is at round %d): %w", s.name, round, cursor, ErrRoundServed)
	}
	s.pending[round] = struct{}{}
	s.mu.Unlock()
	return s.fetchReserved(ctx, round, randomnessLength)
}

// usable returns the error of a request that cannot start: ctx nil, or s
// not made by New (a zero Source has no relays and no round bookkeeping).
func (s *Source) usable(ctx context.Context) error {
	switch {
	case ctx == nil:
		return errors.New("drandsource: nil context")
	case s.pending == nil:
		return fmt.Errorf("drandsource: a Source must be made by New: %w", entropy.ErrPermanent)
	}
	return nil
}

// fetchReserved fetches round, which the caller has put into s.pending, and
// releases it: into the past (cursor) on success, back to the free rounds on
// failure.
func (s *Source) fetchReserved(ctx context.Context, round uint64, n int) (entropy.Block, error) {
	b, err := s.fetchDue(ctx, round)
	s.mu.Lock()
	delete(s.pending, round)
	if err == nil {
		s.cursor = max(s.cursor, round)
	}
	s.mu.Unlock()
	if err != nil {
		return entropy.Block{}, err
	}
	return entropy.Block{
		Data:       bytes.Clone(b.Randomness[:min(n, len(b.Randomness))]),
		Source:     s.name,
		JobID:      strconv.FormatUint(round, 10),
		Verifiable: true,
		Proof:      bytes.Clone(b.Signature),
		Time:       s.chain.RoundTime(round),
		Public:     true, // every round is published to the world
		Evidence:   s.evidence(round, b),
	}, nil
}

// fetchDue waits until round is due, then fetches and verifies it.
func (s *Source) fetchDue(ctx context.Context, round uint64) (Beacon, error) {
	if err := s.waitUntil(ctx, round, s.chain.RoundTime(round)); err != nil {
		return Beacon{}, fmt.Errorf("drandsource: %s waiting for round %d: %w", s.name, round, err)
	}
	return s.beacon(ctx, "public/"+strconv.FormatUint(round, 10), round)
}

// waitUntil returns when s.now() has reached due, the time of round, or
// ctx's error; at once a *RoundNotDueError if ctx's deadline comes first.
func (s *Source) waitUntil(ctx context.Context, round uint64, due time.Time) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := due.Sub(s.now())
		if d <= 0 {
			return nil
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			return &RoundNotDueError{Round: round, Due: due, Wait: d}
		}
		if s.after != nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-s.after(d):
			}
			continue
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// RoundNotDueError is the error of a Fetch or FetchRound whose context
// would end before its round is due: rather than wait in vain, the call
// returns at once. It matches ErrTooEarly (transient), and
// entropy.RetryAfter reads Wait from it, so a Provider holds its requests to
// this source back until the round is due instead of counting a timeout.
type RoundNotDueError struct {
	Round uint64        // the round asked for
	Due   time.Time     // when it is due
	Wait  time.Duration // how long until then, when the call returned
}

// Error returns "drand round R is not due for D (at T)".
func (e *RoundNotDueError) Error() string {
	return fmt.Sprintf("drand round %d is not due for %v (at %s), after the context's deadline",
		e.Round, e.Wait.Round(time.Millisecond), e.Due.UTC().Format(time.RFC3339))
}

// Is matches ErrTooEarly.
func (e *RoundNotDueError) Is(target error) bool { return target == ErrTooEarly }

// RetryAfterDelay returns Wait, for entropy.RetryAfter.
func (e *RoundNotDueError) RetryAfterDelay() time.Duration { return e.Wait }

// Latest returns the latest round a relay has, verified. It is for
// inspection (which round the network is at, whether the local clock agrees)
// and hands out nothing: it does not count as served, and its randomness must
// not be used as the entropy of anything that Fetch or FetchRound also feeds.
func (s *Source) Latest(ctx context.Context) (Beacon, error) {
	if err := s.usable(ctx); err != nil {
		return Beacon{}, err
	}
	return s.beacon(ctx, "public/latest", 0)
}

// beacon asks each relay in turn for path and returns the first beacon that
// verifies; want is the round asked for, or 0 for "latest".
func (s *Source) beacon(ctx context.Context, path string, want uint64) (Beacon, error) {
	var errs []error
	for i, r := range s.relays {
		rctx, share, cancel := relayContext(ctx, len(s.relays)-i)
		b, err := s.fromRelay(rctx, r, path, want)
		expired := rctx.Err() != nil
		cancel()
		if err == nil {
			return b, nil
		}
		if ctx.Err() != nil {
			errs = append(errs, err)
			break
		}
		if expired {
			err = fmt.Errorf("%w (no answer within this relay's share of the deadline, %v)", err, share.Round(time.Millisecond))
		}
		errs = append(errs, err)
	}
	return Beacon{}, &relayErrors{what: s.name + " " + path, errs: errs}
}

// relayContext returns the context of one relay's attempt while left relays,
// this one included, remain to be tried: ctx bounded by an equal share of the
// time left before ctx's deadline, so that a relay that accepts requests and
// never answers cannot use up the time of the relays behind it. The share is
// taken from the time left, so a relay that fails fast leaves more to the
// next; the last relay gets all of it. Without a deadline, or for the last
// relay, ctx itself is used (share 0): the HTTP client's timeout then bounds
// each request.
func relayContext(ctx context.Context, left int) (context.Context, time.Duration, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok || left <= 1 {
		return ctx, 0, func() {}
	}
	share := time.Until(dl) / time.Duration(left)
	rctx, cancel := context.WithTimeout(ctx, share)
	return rctx, share, cancel
}

// fromRelay fetches path from one relay, after checking the relay's chain
// info once, and verifies the beacon against the pinned chain and want.
func (s *Source) fromRelay(ctx context.Context, r *relay, path string, want uint64) (Beacon, error) {
	if err := s.checkRelay(ctx, r); err != nil {
		return Beacon{}, err
	}
	body, err := s.get(ctx, r.base+"/"+s.chain.HashString()+"/"+path)
	if err != nil {
		return Beacon{}, err
	}
	b, err := parseBeacon(body)
	if err != nil {
		return Beacon{}, fmt.Errorf("%s: %w", r.base, err)
	}
	if want != 0 && b.Round != want {
		return Beacon{}, fmt.Errorf("%s: asked for round %d, got round %d: %w", r.base, want, b.Round, ErrWrongRound)
	}
	rnd, err := Verify(s.chain.Scheme, s.chain.PublicKey, b.Round, b.PreviousSignature, b.Signature)
	if err != nil {
		return Beacon{}, fmt.Errorf("%s: %w", r.base, err)
	}
	if b.Randomness != nil && !bytes.Equal(b.Randomness, rnd) {
		return Beacon{}, fmt.Errorf("%s: round %d: stated randomness is not SHA-256 of the signature: %w", r.base, b.Round, ErrBadProof)
	}
	b.Randomness = rnd
	return b, nil
}

// checkRelay fetches the relay's chain info, unless it matched before, and
// compares it with the pin. A mismatch is not remembered: the next call asks
// again.
func (s *Source) checkRelay(ctx context.Context, r *relay) error {
	if r.infoOK.Load() {
		return nil
	}
	body, err := s.get(ctx, r.base+"/"+s.chain.HashString()+"/info")
	if err != nil {
		return err
	}
	info, err := parseInfo(body)
	if err != nil {
		return fmt.Errorf("%s: %w", r.base, err)
	}
	if err := checkInfo(s.chain, info); err != nil {
		return fmt.Errorf("%s: %w", r.base, err)
	}
	r.infoOK.Store(true)
	return nil
}

// get fetches u and returns its body, at most maxBody bytes. A status other
// than 200 is an *entropy.APIError, a failed request an *ConnError.
func (s *Source) get(ctx context.Context, u string) ([]byte, error) {
	op := "GET " + u
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &ConnError{Op: op, Err: err}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, &ConnError{Op: op, Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if resp.StatusCode != http.StatusOK {
		if len(body) > maxBody {
			body = body[:maxBody]
		}
		return nil, &entropy.APIError{
			StatusCode: resp.StatusCode,
			Message:    shortText(body),
			RequestID:  shortText([]byte(resp.Header.Get("X-Request-Id"))),
			RetryAfter: retryAfter(resp.Header.Get("Retry-After"), s.now()),
			Body:       body,
		}
	}
	if err != nil {
		return nil, &ConnError{Op: op + " (reading body)", Err: err}
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("drandsource: %s: body over %d bytes: %w", op, maxBody, ErrMalformed)
	}
	return body, nil
}

// unwrapURLError returns the cause inside a *url.Error, whose text would
// repeat the URL that ConnError.Op already names, with its text bounded
// (see boundedError).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		err = ue.Err
	}
	if len(err.Error()) > maxCauseText {
		return &boundedError{err: err}
	}
	return err
}

// maxCauseText bounds the text of a network error's cause: net/http quotes
// a malformed header line of the answer whole, up to its 10 MB limit on
// headers, and that text would go into every error, label and log line.
const maxCauseText = 1024

// boundedError is an error whose text is its cause's, cut to maxCauseText
// bytes; it unwraps to the cause.
type boundedError struct{ err error }

func (e *boundedError) Error() string {
	t := e.err.Error()
	if len(t) <= maxCauseText {
		return t
	}
	return strings.ToValidUTF8(t[:maxCauseText], "") + "…"
}

func (e *boundedError) Unwrap() error { return e.err }

// shortText returns body as a one-line message if it is short, printable
// text, and "" otherwise.
func shortText(body []byte) string {
	const maxMsg = 200
	t := strings.TrimSpace(string(body))
	if t == "" || len(t) > maxMsg || !utf8.ValidString(t) {
		return ""
	}
	for _, r := range t {
		if r < 0x20 || r == 0x7f {
			return ""
		}
	}
	return t
}

// retryAfter parses a Retry-After header: seconds or an HTTP date. It
// returns 0 for an absent, malformed or past value, and saturates at the
// longest time.Duration; it does not cap long values (the Provider does).
func retryAfter(h string, now time.Time) time.Duration {
	// A long delay is passed on, never dropped: the Provider caps the holds
	// it honours. One beyond time.Duration, in any spelling, saturates.
	return retryafter.Parse(h, now)
}

// relayErrors is the error of a request that every relay failed. Its text
// lists each relay's failure. It unwraps to the transient failures only when
// there are any, so that errors.Is(err, entropy.ErrPermanent) holds only
// when every relay failed permanently: one relay's 404 must not open the
// Provider's breaker while another relay is merely slow.
type relayErrors struct {
	what string
	errs []error
}

// Error returns "drandsource: <what>: every relay failed: e1; e2".
func (e *relayErrors) Error() string {
	if len(e.errs) == 1 {
		return "drandsource: " + e.what + ": " + e.errs[0].Error()
	}
	parts := make([]string, len(e.errs))
	for i, err := range e.errs {
		parts[i] = err.Error()
	}
	return fmt.Sprintf("drandsource: %s: all %d relays failed: %s", e.what, len(e.errs), strings.Join(parts, "; "))
}

// RetryAfterDelay returns the longest Retry-After of any relay's failure, so
// that entropy.RetryAfter finds it whichever relay sent it (contract point 7:
// a Retry-After from any response holds the Provider back).
func (e *relayErrors) RetryAfterDelay() time.Duration {
	var d time.Duration
	for _, err := range e.errs {
		d = max(d, entropy.RetryAfter(err))
	}
	return d
}

// Unwrap returns the transient failures, or all failures when none is
// transient.
func (e *relayErrors) Unwrap() []error {
	var transient []error
	for _, err := range e.errs {
		if !errors.Is(err, entropy.ErrPermanent) {
			transient = append(transient, err)
		}
	}
	if len(transient) == 0 {
		return e.errs
	}
	return transient
}

// evidence is the proof of round b of s's chain, for transcripts: the chain
// hash, the round, the signature and, on a chained chain, the previous
// signature, which anyone can check with Verify and the chain's info.
func (s *Source) evidence(round uint64, b Beacon) *entropy.Proof {
	e := &entropy.Proof{
		Scheme:    evidence.SchemeDrand,
		Source:    s.name,
		JobID:     strconv.FormatUint(round, 10),
		Chain:     bytes.Clone(s.chain.Hash),
		Round:     round,
		Signature: bytes.Clone(b.Signature),
	}
	if s.chain.Scheme == SchemeChained {
		e.PrevSignature = bytes.Clone(b.PreviousSignature)
	}
	return e
}
