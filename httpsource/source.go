// Package httpsource is the client of the reference HTTP protocol of verifiable
// entropy (docs/protocol.md): an entropy.Source that
// asks a service for GET /v1/entropy?size=N, follows queued jobs, checks the
// Ed25519 signature of every job and maps every error answer (each body shape,
// status, Retry-After and job error the protocol allows) to the error types
// of package entropy.
//
// A block is Verifiable only if its signature checked, and only a configured
// public key (WithPublicKey, or WithFetchPublicKey) lets the source check one.
// Without a key every block is non-verifiable, and an entropy.Provider refuses
// such blocks: give the source a key.
//
// The package is also the one home of the protocol's wire format (JobResponse,
// PublicKeyResponse, the error body shapes, SignedMessage); package sim serves
// the same types.
package httpsource

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/internal/evidence"
	"github.com/provenrand/entropy/internal/loopback"
	"github.com/provenrand/entropy/internal/names"
	"github.com/provenrand/entropy/internal/retryafter"
)

// Defaults of the options.
const (
	DefaultName         = "quantropy"           // WithName
	DefaultMaxBodyBytes = 1 << 20               // WithMaxBodyBytes: 1 MiB
	DefaultPollBase     = 50 * time.Millisecond // WithPollInterval
	DefaultPollMax      = 2 * time.Second       // WithPollInterval
	maxErrorBodyKept    = 4096                  // APIError.Body is cut to this
	redactedPlaceholder = "[REDACTED]"
)

// Source is an entropy.Source speaking the reference protocol to one service.
// It is safe for concurrent use. Make one with New.
type Source struct {
	base       *url.URL
	apiKey     string
	name       string
	client     *http.Client
	maxBody    int64
	pollBase   time.Duration
	pollMax    time.Duration
	quota429   bool
	fetchKey   bool
	allowHTTP  bool
	jsonOnly   bool
	keepAlive  bool
	now        func() time.Time                     // clock for Retry-After dates and job timestamps (WithClock)
	after      func(time.Duration) <-chan time.Time // the same clock's waits: polls (WithClock)
	tolerance  time.Duration                        // WithTimestampTolerance
	newNonce   func() ([]byte, error)               // the nonce of each Fetch: NewNonce; tests replace it
	configured ed25519.PublicKey
	prefix     string // the base URL without a trailing slash; paths follow it

	mu       sync.Mutex        // guards pub and keyFetch
	pub      ed25519.PublicKey // the key in use: configured, or fetched once
	keyFetch *keyFetch         // the GET /v1/public-key in flight, if any

	qmu   sync.Mutex    // guards quota
	quota entropy.Quota // the last quota figures an answer gave (see Quota)
}

// errNotMade is the error of a Source that New did not make (a zero Source):
// it has no service to ask.
var errNotMade = fmt.Errorf("httpsource: a Source must be made by New: %w", entropy.ErrPermanent)

// errNilContext is the error of a request made with a nil context.
// FetchPublicKey returns it, and so every method that asks the service
// (Fetch, FetchNonce, FetchBatch, Job), which all call it first.
var errNilContext = errors.New("httpsource: nil context")

// Option configures a Source.
type Option func(*Source) error

// MinAPIKeyLen is the shortest API key WithAPIKey accepts, in bytes. The
// key is cut out of every error text, and a shorter key would match
// ordinary text ("unknown" holds the key "k"): redacting it would mangle
// messages, and a key that short would be guessed anyway.
const MinAPIKeyLen = 8

// WithAPIKey sets the key sent as "Authorization: Bearer <key>". The key is
// removed from every error the source returns, even if a server echoes it.
// It must be printable ASCII without spaces, at least MinAPIKeyLen bytes
// long; an empty key sends none.
func WithAPIKey(key string) Option {
	return func(s *Source) error {
		if len(key) > 0 && len(key) < MinAPIKeyLen {
			// The error names the length only, never the key.
			return fmt.Errorf("httpsource: API key of %d bytes is too short: want at least %d (a shorter key cannot be told from ordinary text to keep it out of errors)", len(key), MinAPIKeyLen)
		}
		for i := 0; i < len(key); i++ {
			if key[i] <= ' ' || key[i] >= 0x7f {
				return errors.New("httpsource: API key must be printable ASCII without spaces")
			}
		}
		s.apiKey = key
		return nil
	}
}

// WithPublicKey sets the service's Ed25519 public key; every block's
// signature is then checked, and only checked blocks are Verifiable.
func WithPublicKey(pub ed25519.PublicKey) Option {
	return func(s *Source) error {
		if len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("httpsource: public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
		}
		s.configured = append(ed25519.PublicKey(nil), pub...)
		return nil
	}
}

// WithFetchPublicKey makes the source fetch the service's public key from
// GET /v1/public-key once, on the first Fetch (or FetchPublicKey), and use it
// from then on. This is trust on first use: it guards against later
// tampering, not against a service or network that lies from the start. Pin
// the key with WithPublicKey where that matters. A key set with WithPublicKey
// wins over this option.
func WithFetchPublicKey() Option {
	return func(s *Source) error { s.fetchKey = true; return nil }
}

// WithHTTPClient sets the HTTP client. The default is a client that follows
// no redirects and has no overall timeout (the context passed to Fetch
// bounds each call).
//
// With an API key, every request asks its connection to be closed after the
// answer (http.Request.Close; see WithKeepAlive), so that net/http never
// holds a connection idle on which a service could send bytes echoing the
// key, which it would log through the standard log package. With an API key
// the source uses a copy of c that follows no redirect to another scheme,
// host or port than the base URL's (net/http would send the key along). A
// client whose transport is not
// net/http's, or that logs on its own, is the caller's to keep quiet.
func WithHTTPClient(c *http.Client) Option {
	return func(s *Source) error {
		if c == nil {
			return errors.New("httpsource: nil HTTP client")
		}
		s.client = c
		return nil
	}
}

// WithName sets the Source name of the blocks, which labels show. Default
// "quantropy". It must be a name names.Check accepts, of at most 256
// bytes.
func WithName(name string) Option {
	return func(s *Source) error {
		if name == "" {
			return errors.New("httpsource: empty source name")
		}
		if len(name) > maxJobID {
			return fmt.Errorf("httpsource: source name of %d bytes, more than %d", len(name), maxJobID)
		}
		if err := names.Check(name); err != nil {
			return fmt.Errorf("httpsource: source name: %w (docs/protocol.md, \"Names\")", err)
		}
		s.name = name
		return nil
	}
}

// WithMaxBodyBytes caps the bytes read from any response body. A success
// body larger than the cap is malformed (ErrMalformed); an error body
// is cut. Default 1 MiB, enough for the largest request (65536 bytes of
// entropy are 87384 bytes of base64).
func WithMaxBodyBytes(n int64) Option {
	return func(s *Source) error {
		if n < 1 {
			return fmt.Errorf("httpsource: max body bytes %d must be positive", n)
		}
		s.maxBody = n
		return nil
	}
}

// WithAllowInsecureHTTP allows a plain http:// base URL to a host that is not
// loopback. Without it New refuses such a URL: the API key would cross the
// network in clear text.
func WithAllowInsecureHTTP() Option {
	return func(s *Source) error { s.allowHTTP = true; return nil }
}

// WithQuotaOn429WithoutRetryAfter reads a 429 answer without a Retry-After
// header as an exhausted quota (some services answer 429 when "the user
// exceeded its total quota of use"): the APIError has Quota set and is
// permanent. Without this option the source reads it as the reference
// protocol does: every 429 is a passing rate limit, retried with
// exponential backoff.
func WithQuotaOn429WithoutRetryAfter() Option {
	return func(s *Source) error { s.quota429 = true; return nil }
}

// WithKeepAlive lets the requests of a source with an API key share
// kept-alive connections, which saves a TCP (and TLS) handshake per request.
// By default such a source closes each connection after its answer: on an
// idle kept-alive connection net/http reads bytes that a service sends
// unasked and logs them through the standard log package ("Unsolicited
// response received on idle HTTP channel starting with ..."), and a hostile
// service can make them echo the Authorization header. Give this option
// where the standard log's output is the application's to keep
// (log.SetOutput to a writer that drops or redacts such lines), or where
// the service is trusted.
func WithKeepAlive() Option {
	return func(s *Source) error { s.keepAlive = true; return nil }
}

// WithJSONOnly makes the source ask for JSON answers only. By default it
// asks for the binary form of completed jobs as well (AcceptBinary), which
// saves the service and the client the base64 and JSON of the entropy; a
// service that does not offer it answers JSON, which the source reads just as
// well. The signature and every check are the same in both forms.
func WithJSONOnly() Option {
	return func(s *Source) error { s.jsonOnly = true; return nil }
}

// WithClock sets the clock the source reads Retry-After dates and checks
// job timestamps against, and waits on between the polls of a queued job
// (default: the system clock). It takes the
// entropy.Clock that every WithClock of the module takes; entropy.NowFunc
// adapts a plain time function.
func WithClock(clk entropy.Clock) Option {
	return func(s *Source) error {
		if clk == nil {
			return errors.New("httpsource: nil clock")
		}
		s.now, s.after = clk.Now, clk.After
		return nil
	}
}

// WithTimestampTolerance sets how far, by the source's clock, a job's
// timestamp may lie before the request was sent or after the answer arrived
// (DefaultTimestampTolerance, 5 minutes). A job outside that window is
// refused as a bad proof: it was not made for this request. d must be
// positive.
func WithTimestampTolerance(d time.Duration) Option {
	return func(s *Source) error {
		if d <= 0 {
			return fmt.Errorf("httpsource: timestamp tolerance %v must be positive", d)
		}
		s.tolerance = d
		return nil
	}
}

// WithPollInterval sets the backoff of polling a queued job: the first poll
// waits about base, each next one twice as long, capped at max, with jitter.
// Defaults 50ms and 2s. A Retry-After on the 202 answer sets the first wait.
func WithPollInterval(base, max time.Duration) Option {
	return func(s *Source) error {
		if base <= 0 || max < base {
			return fmt.Errorf("httpsource: poll interval base %v, max %v: need 0 < base <= max", base, max)
		}
		s.pollBase, s.pollMax = base, max
		return nil
	}
}

// New returns a Source for the service at baseURL (e.g.
// "https://api.example.com"; a path prefix is kept). A plain http:// URL is
// allowed only to a loopback host unless WithAllowInsecureHTTP is given.
//
// A URL that carries credentials (https://KEY@host, https://user:KEY@host)
// is refused: give the key with WithAPIKey, which keeps it out of every error.
// New's errors never repeat the URL, which may hold a key somewhere else.
func New(baseURL string, opts ...Option) (*Source, error) {
	u, err := parseBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	s := &Source{
		base:      u,
		name:      DefaultName,
		maxBody:   DefaultMaxBodyBytes,
		pollBase:  DefaultPollBase,
		pollMax:   DefaultPollMax,
		now:       time.Now,
		after:     time.After,
		tolerance: DefaultTimestampTolerance,
		newNonce:  NewNonce,
	}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(s); err != nil {
			return nil, err
		}
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !s.allowHTTP && !loopback.Is(u.Hostname()) {
			return nil, fmt.Errorf("httpsource: refusing plain http:// to non-loopback host %q (use https, or WithAllowInsecureHTTP)", u.Hostname())
		}
	default:
		// The scheme is not repeated: a key pasted as the URL parses as one.
		return nil, errors.New("httpsource: base URL scheme must be https or http")
	}
	if s.client == nil {
		s.client = &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	} else if s.apiKey != "" {
		s.client = keyStaysHome(s.client, u)
	}
	s.pub = s.configured
	s.prefix = strings.TrimSuffix(u.String(), "/")
	return s, nil
}

// keyStaysHome returns a copy of c that follows no redirect out of base's
// origin (scheme, host and port). net/http sends the Authorization header on
// with a redirect to any host of the same name, whatever its port or scheme,
// and to its subdomains: a service, or anyone in the middle, could send the
// key to another server, or down to plain http. A redirect out of the origin
// is answered by the 3xx itself, as the default client answers every
// redirect; one within it goes to c's own CheckRedirect. c is not changed.
func keyStaysHome(c *http.Client, base *url.URL) *http.Client {
	cc := *c
	next := c.CheckRedirect
	cc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if origin(req.URL) != origin(base) {
			return http.ErrUseLastResponse
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 { // net/http's default
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &cc
}

// origin returns the scheme, host and port of u, the port filled in from the
// scheme when u leaves it out.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

// parseBaseURL parses and checks a base URL. Its errors never repeat the
// URL or any part of it that may carry a secret (user info, path, query,
// fragment): url.Redacted hides a password, not a key given as the user.
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// *url.Error repeats the whole URL: keep only why it failed, and
		// not even that when it quotes a part of the URL.
		var ue *url.Error
		if errors.As(err, &ue) && ue.Err != nil && !strings.Contains(ue.Err.Error(), "\"") {
			return nil, fmt.Errorf("httpsource: base URL is not a valid URL: %v", ue.Err)
		}
		return nil, errors.New("httpsource: base URL is not a valid URL")
	}
	switch {
	case u.User != nil:
		return nil, errors.New("httpsource: base URL carries credentials (user@ or user:password@): give the API key with WithAPIKey (the CLI: ENTROPY_API_KEY), never in the URL")
	case u.Host == "":
		return nil, errors.New("httpsource: base URL has no host (want e.g. https://api.example.com)")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, errors.New("httpsource: base URL must not have a query or fragment")
	}
	return u, nil
}

// Name returns the Source name the blocks carry.
func (s *Source) Name() string { return s.name }

// PublicKey returns the public key in use: the configured one, the fetched
// one, or nil if there is none (yet).
func (s *Source) PublicKey() ed25519.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pub
}

// FetchPublicKey returns the key in use, fetching it from GET /v1/public-key
// first if the source was made with WithFetchPublicKey and has none yet (trust
// on first use). Without a configured key and without that option it returns
// nil and no error.
//
// One caller fetches the key while the others wait for it, each until its
// own ctx ends (then with ctx's error): no lock is held across the request.
// If the fetch fails, the waiters try again themselves. A nil ctx is an
// error.
func (s *Source) FetchPublicKey(ctx context.Context) (ed25519.PublicKey, error) {
	if ctx == nil {
		return nil, errNilContext
	}
	for {
		s.mu.Lock()
		if s.pub != nil || !s.fetchKey {
			pub := s.pub
			s.mu.Unlock()
			return pub, nil
		}
		kf := s.keyFetch
		if kf == nil {
			kf = &keyFetch{done: make(chan struct{})}
			s.keyFetch = kf
			s.mu.Unlock()
			return s.leadKeyFetch(ctx, kf)
		}
		s.mu.Unlock()
		select {
		case <-kf.done:
			// Fetched (the loop returns it) or failed (the loop tries).
		case <-ctx.Done():
			return nil, &ConnError{Op: "GET " + PublicKeyPath + " (waiting for another caller's)", Err: ctx.Err()}
		}
	}
}

// keyFetch is one GET /v1/public-key in flight; done is closed when it ends.
type keyFetch struct{ done chan struct{} }

// leadKeyFetch fetches the public key for every caller of FetchPublicKey,
// keeps it if it is good, and lets the waiters go.
func (s *Source) leadKeyFetch(ctx context.Context, kf *keyFetch) (pub ed25519.PublicKey, err error) {
	defer func() {
		s.mu.Lock()
		if err == nil && pub != nil {
			s.pub = pub
		}
		s.keyFetch = nil
		s.mu.Unlock()
		close(kf.done)
	}()
	return s.getPublicKey(ctx)
}

// getPublicKey sends GET /v1/public-key and returns the key it answers.
func (s *Source) getPublicKey(ctx context.Context) (ed25519.PublicKey, error) {
	buf, body, hdr, err := s.get(ctx, PublicKeyPath, "")
	if err != nil {
		return nil, err
	}
	defer releaseBuffer(buf)
	var pk PublicKeyResponse
	if err := json.Unmarshal(body, &pk); err != nil {
		return nil, s.malformed(PublicKeyPath, hdr, "public key JSON: %v", err)
	}
	if pk.Algorithm != "ed25519" {
		return nil, s.malformed(PublicKeyPath, hdr, "public key algorithm %q, want ed25519", pk.Algorithm)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(pk.PublicKey)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, s.malformed(PublicKeyPath, hdr, "public key is not %d bytes of base64", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

// Fetch asks the service for n bytes (1 ≤ n ≤ 65536) and returns them as one
// block of exactly n bytes. It implements entropy.Source. Every request
// carries a fresh nonce (protocol v2, see FetchNonce for the checks).
//
// A queued job (202) is polled with backoff until it completes, fails or ctx
// ends. Errors: *entropy.APIError for an error answer, *entropy.JobError for
// a failed job, *ConnError for network and context failures, and
// errors wrapping ErrMalformed (bad JSON or base64, truncated body,
// wrong length) or ErrBadProof (signature did not check). No bytes
// are returned with an error.
//
// Fetch sends one GET /v1/entropy per call and never retries; retrying is the
// Provider's job. One exception lies below this package: net/http itself
// replays a GET once when a reused keep-alive connection closes before any
// byte of the answer arrives, so a service may see two requests for one call.
// Polls of a queued job are extra GET /v1/jobs/{id} requests, paced by
// WithPollInterval, not by the Provider's rate limit.
func (s *Source) Fetch(ctx context.Context, n int) (entropy.Block, error) {
	if s.client == nil {
		return entropy.Block{}, errNotMade
	}
	nonce, err := s.newNonce()
	if err != nil {
		return entropy.Block{}, err
	}
	return s.FetchNonce(ctx, n, nonce)
}

// FetchNonce is Fetch with the request's nonce given (MinNonceSize to
// MaxNonceSize bytes): GET /v1/entropy?size=N&nonce=HEX. It is
// what a Provider calls for reads whose nonce is derived from what they are
// for (an event draw).
//
// The job must be bound to this request (protocol v2): its nonce must be the
// one sent, its size n, its timestamp within the tolerance
// (WithTimestampTolerance) of the time between sending and answer, and, with
// a public key, its v2 signature must check over all of them. Anything else
// is discarded whole: a job without a nonce or with another one, or with a
// timestamp out of the window, is an error wrapping ErrBadProof. A
// queued job is polled, and the completed job is held to the same checks.
// The block's Evidence carries the nonce, size, timestamp and signature.
func (s *Source) FetchNonce(ctx context.Context, n int, nonce []byte) (entropy.Block, error) {
	if s.client == nil {
		return entropy.Block{}, errNotMade
	}
	if n < MinSize || n > MaxSize {
		return entropy.Block{}, fmt.Errorf("httpsource: size %d outside %d..%d: %w", n, MinSize, MaxSize, entropy.ErrPermanent)
	}
	if err := CheckNonce(nonce); err != nil {
		return entropy.Block{}, fmt.Errorf("%w: %w", err, entropy.ErrPermanent)
	}
	pub, err := s.FetchPublicKey(ctx)
	if err != nil {
		return entropy.Block{}, err
	}
	want := binding{nonce: nonce, sent: s.now()}
	buf, body, hdr, err := s.get(ctx, EntropyPath, "size="+strconv.Itoa(n)+"&"+NonceParam+"="+EncodeNonce(nonce))
	if err != nil {
		return entropy.Block{}, err
	}
	defer releaseBuffer(buf)
	resp, err := s.decodeJob(EntropyPath, hdr, body, "")
	if err != nil {
		return entropy.Block{}, err
	}
	var job Job
	if resp.Status == StatusQueued || resp.Status == StatusRunning {
		job, err = s.poll(ctx, resp.JobID, retryAfter(hdr, s.now()), pub, n, &want)
	} else {
		job, err = s.completed(EntropyPath, hdr, resp, pub, n, &want)
	}
	if err != nil {
		return entropy.Block{}, err
	}
	return s.block(job), nil
}

// block is the entropy.Block of a checked job.
func (s *Source) block(job Job) entropy.Block {
	return entropy.Block{
		Data:       job.Data,
		Source:     s.name,
		JobID:      job.ID,
		Verifiable: job.Verified,
		Proof:      job.Signature,
		Time:       job.Time,
		Evidence: &entropy.Proof{
			Scheme:    evidence.SchemeReferenceV2,
			Source:    s.name,
			JobID:     job.ID,
			Nonce:     job.Nonce,
			Size:      len(job.Data),
			Timestamp: job.Timestamp,
			Signature: job.Signature,
		},
	}
}

// binding is what a job fetched for a request must be bound to: the nonce
// sent, and the time the request went out (the start of the timestamp's
// window).
type binding struct {
	nonce []byte
	sent  time.Time
}

// Job is a job of the service as GET /v1/jobs/{job_id} tells it.
type Job struct {
	ID        string
	Status    string            // StatusQueued, StatusRunning, StatusCompleted or StatusFailed (also for "error")
	Data      []byte            // completed jobs: the entropy
	Signature []byte            // completed jobs: the service's signature
	Time      time.Time         // completed jobs: when the service produced Data
	Verified  bool              // the signature checked against the source's public key
	Err       *entropy.JobError // failed jobs

	// Nonce is the nonce of the request that made the job (protocol v2),
	// nil for a job of protocol v1, whose signature binds no request.
	Nonce []byte
	// Timestamp is the job's timestamp exactly as the service sent (and,
	// in v2, signed) it.
	Timestamp string
}

// Proof returns the proof of a completed job, for a transcript: v2 if the
// job has a nonce, v1 otherwise. source is the Source name of its spans.
func (j Job) Proof(source string) entropy.Proof {
	p := entropy.Proof{
		Scheme: evidence.SchemeReferenceV1, Source: source, JobID: j.ID,
		Data: bytes.Clone(j.Data), Signature: bytes.Clone(j.Signature),
	}
	if j.Nonce != nil {
		p.Scheme, p.Nonce, p.Size, p.Timestamp = evidence.SchemeReferenceV2, bytes.Clone(j.Nonce), len(j.Data), j.Timestamp
	}
	return p
}

// Job looks a job up after the fact, as an auditor does: it returns the job
// in whatever state it is, without polling. A completed job's signature is
// checked when the source has a public key: v2 for a job with a nonce, v1
// (old jobs) for one without; a bad one is an error wrapping
// ErrBadProof. Its timestamp is not held to a window: the job may
// be years old.
func (s *Source) Job(ctx context.Context, id string) (Job, error) {
	if s.client == nil {
		return Job{}, errNotMade
	}
	if id == "" {
		return Job{}, errors.New("httpsource: empty job ID")
	}
	pub, err := s.FetchPublicKey(ctx)
	if err != nil {
		return Job{}, err
	}
	path := JobsPath + url.PathEscape(id)
	buf, body, hdr, err := s.get(ctx, path, "")
	if err != nil {
		return Job{}, err
	}
	defer releaseBuffer(buf)
	resp, err := s.decodeJob(JobsPath, hdr, body, id)
	if err != nil {
		return Job{}, err
	}
	switch resp.Status {
	case StatusCompleted:
		return s.completed(JobsPath, hdr, resp, pub, -1, nil)
	case StatusFailed:
		return Job{ID: resp.JobID, Status: resp.Status, Err: s.jobError(resp, hdr)}, nil
	}
	return Job{ID: resp.JobID, Status: resp.Status}, nil
}

// poll polls job id until it is completed or failed, or ctx ends, and
// returns the completed job, which must have n bytes, its signature checked
// if pub is set.
// first, if positive, is the wait before the first poll (a Retry-After on the
// 202).
func (s *Source) poll(ctx context.Context, id string, first time.Duration, pub ed25519.PublicKey, n int, want *binding) (Job, error) {
	path := JobsPath + url.PathEscape(id)
	wait := s.pollBase
	delay := pollDelay(wait, first)
	for {
		select {
		case <-ctx.Done():
			return Job{}, &ConnError{Op: "poll job " + s.redact(id), Err: ctx.Err()}
		case <-s.after(delay):
		}
		job, hdr, done, err := s.pollOnce(ctx, path, id, pub, n, want)
		if done || err != nil {
			return job, err
		}
		wait = min(2*wait, s.pollMax)
		delay = pollDelay(wait, retryAfter(hdr, s.now()))
	}
}

// pollOnce sends one poll of job id (at path) and reports whether the job is
// done: completed (returned, its signature checked if pub is set) or failed
// (a *entropy.JobError). A completed job must have n bytes and be bound to
// want.
func (s *Source) pollOnce(ctx context.Context, path, id string, pub ed25519.PublicKey, n int, want *binding) (job Job, hdr http.Header, done bool, err error) {
	buf, body, hdr, err := s.get(ctx, path, "")
	var ae *entropy.APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound {
		// The service lost the job: it produced nothing, and a new job
		// may succeed (a lost job is transient, not a revoked key).
		return Job{}, nil, true, &entropy.JobError{JobID: s.redact(id), Code: "JobLost",
			Message: "the service no longer knows the job", RequestID: ae.RequestID}
	}
	if err != nil {
		return Job{}, nil, true, err
	}
	defer releaseBuffer(buf)
	resp, err := s.decodeJob(JobsPath, hdr, body, id)
	if err != nil {
		return Job{}, nil, true, err
	}
	switch resp.Status {
	case StatusCompleted:
		job, err = s.completed(EntropyPath, hdr, resp, pub, n, want)
		return job, hdr, true, err
	case StatusFailed:
		return Job{}, hdr, true, s.jobError(resp, hdr)
	}
	return Job{}, hdr, false, nil
}

// pollDelay is the wait before the next poll: wait with jitter, but never
// less than a Retry-After the service sent (which is not capped by the poll
// interval: no request goes out before a Retry-After has passed).
func pollDelay(wait, retryAfter time.Duration) time.Duration {
	return max(jitter(wait), retryAfter)
}

// jitter returns a duration uniformly in [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// jobError turns a failed job, told by an answer with headers hdr, into a
// *entropy.JobError, with the API key removed from every field.
func (s *Source) jobError(resp jobBody, hdr http.Header) *entropy.JobError {
	e := &entropy.JobError{
		JobID:     s.redact(resp.JobID),
		Code:      "JobFailed",
		RequestID: s.requestID(hdr),
		Details:   textItems(resp.Items, s.safeText),
	}
	if resp.Error != nil {
		if c := s.safeText([]byte(resp.Error.Code)); c != "" {
			e.Code = c
		}
		e.Message = s.safeText([]byte(resp.Error.Message))
	}
	return e
}

// requestID returns the request ID of an answer, as safe text; "" if none.
func (s *Source) requestID(hdr http.Header) string {
	if hdr == nil {
		return ""
	}
	return s.safeText([]byte(hdr.Get(RequestIDHeader)))
}

// decodeJob decodes and sanity-checks a job body. wantID, if set, is the job
// the body must be about.
func (s *Source) decodeJob(path string, hdr http.Header, body []byte, wantID string) (jobBody, error) {
	var resp jobBody
	if ct := hdr["Content-Type"]; len(ct) > 0 && IsBinary(ct[0]) {
		var err error
		if resp, err = binaryJob(hdr, body); err != nil {
			return jobBody{}, s.malformed(path, hdr, "binary job: %v", err)
		}
	} else {
		var err error
		if resp, err = parseJob(body); err != nil {
			return jobBody{}, s.malformed(path, hdr, "job JSON: %v", err)
		}
		if !resp.common {
			// A body beyond the common shape may carry quota figures.
			s.noteQuota(http.StatusOK, hdr, body)
		}
	}
	if resp.JobID == "" && resp.Status == StatusFailed && wantID != "" {
		// A failure told by a poll may leave out the ID it was asked about.
		resp.JobID = wantID
	}
	if !validJobID(resp.JobID) {
		return jobBody{}, s.malformed(path, hdr, "missing or invalid job_id")
	}
	if s.holdsKey(resp.JobID) {
		// A job ID goes into labels, journals and transcripts: one that
		// holds the key would publish it.
		return jobBody{}, s.malformed(path, hdr, "job_id holds the API key")
	}
	if wantID != "" && resp.JobID != wantID {
		return jobBody{}, s.malformed(path, hdr, "answer is about job %q, asked for %q", resp.JobID, wantID)
	}
	switch resp.Status {
	case StatusQueued, StatusRunning, StatusCompleted, StatusFailed:
	default:
		return jobBody{}, s.malformed(path, hdr, "job %s has unknown status %q", resp.JobID, resp.Status)
	}
	if resp.Status == StatusFailed && path == EntropyPath {
		// The protocol reports failures only through polling, but a failed job
		// is a failed job wherever it shows.
		return jobBody{}, s.jobError(resp, hdr)
	}
	return resp, nil
}

// maxJobID bounds a job ID: it is copied into every label and journal line.
const maxJobID = 256

// validJobID accepts a bounded ID in the character set of names
// (names.Check, docs/protocol.md), since it travels into labels, logs,
// journals, transcripts and the reports people read.
func validJobID(id string) bool {
	return len(id) <= maxJobID && names.Check(id) == nil
}

// completed decodes a completed job and checks its signature if pub is set.
// n, if not negative, is the number of bytes of entropy the job must have.
// want, if set, is the request the job must be bound to (protocol v2: its
// nonce, and a timestamp in the window); without it (an auditor's lookup) a
// job without a nonce is checked as v1.
func (s *Source) completed(path string, hdr http.Header, resp jobBody, pub ed25519.PublicKey, n int, want *binding) (Job, error) {
	if resp.Status != StatusCompleted {
		return Job{}, s.malformed(path, hdr, "job %s is %s, not completed", resp.JobID, resp.Status)
	}
	enc := base64.StdEncoding.Strict()
	var data []byte
	if resp.Binary {
		// The body is the entropy; the block gets its own copy.
		data = bytes.Clone(resp.Entropy)
	} else {
		// Straight from the body's text into the block's own bytes.
		data = make([]byte, enc.DecodedLen(len(resp.Entropy)))
		m, err := enc.Decode(data, resp.Entropy)
		if err != nil {
			return Job{}, s.malformed(path, hdr, "job %s: entropy is not base64: %v", resp.JobID, err)
		}
		data = data[:m:m]
	}
	if n >= 0 && len(data) != n {
		return Job{}, s.malformed(path, hdr, "job %s has %d bytes of entropy, asked for %d", resp.JobID, len(data), n)
	}
	sig := make([]byte, enc.DecodedLen(len(resp.Signature)))
	m, err := enc.Decode(sig, resp.Signature)
	if err != nil {
		return Job{}, s.malformed(path, hdr, "job %s: signature is not base64: %v", resp.JobID, err)
	}
	sig = sig[:m:m]
	ts, err := time.Parse(time.RFC3339Nano, string(resp.Timestamp))
	if err != nil {
		return Job{}, s.malformed(path, hdr, "job %s: timestamp is not RFC 3339: %q", resp.JobID, resp.Timestamp)
	}
	job := Job{ID: resp.JobID, Status: resp.Status, Data: data, Signature: sig, Time: ts, Timestamp: string(resp.Timestamp)}
	if resp.Nonce != nil {
		if job.Nonce, err = DecodeNonce(string(resp.Nonce)); err != nil {
			return Job{}, s.malformed(path, hdr, "job %s: %v", resp.JobID, err)
		}
	}
	if want != nil {
		if err := s.bound(job, want); err != nil {
			return Job{}, s.withRequestID(hdr, fmt.Errorf("httpsource: job %s%s: %w: %w", s.redact(resp.JobID), s.reqIDSuffix(hdr), err, ErrBadProof))
		}
	}
	if pub != nil {
		ok := false
		if job.Nonce != nil {
			ok = VerifySignatureV2(pub, resp.JobID, job.Nonce, len(data), job.Timestamp, data, sig)
		} else {
			ok = VerifySignature(pub, resp.JobID, data, sig)
		}
		if !ok {
			return Job{}, s.withRequestID(hdr, fmt.Errorf("httpsource: job %s%s: signature does not verify: %w", s.redact(resp.JobID), s.reqIDSuffix(hdr), ErrBadProof))
		}
		job.Verified = true
	}
	return job, nil
}

// bound checks that job answers the request want describes: the nonce sent
// (a job without one is a v1 job, bound to no request), and a timestamp no
// more than the tolerance before the request went out or after now.
func (s *Source) bound(job Job, want *binding) error {
	switch {
	case job.Nonce == nil:
		return errors.New("the answer carries no nonce (a v1 job binds no request)")
	case !bytes.Equal(job.Nonce, want.nonce):
		return errors.New("the answer's nonce is not the one this request sent")
	}
	now := s.now()
	if job.Time.Before(want.sent.Add(-s.tolerance)) || job.Time.After(now.Add(s.tolerance)) {
		return fmt.Errorf("timestamp %s is outside %s ± %v of this request", job.Timestamp, want.sent.UTC().Format(time.RFC3339), s.tolerance)
	}
	return nil
}

// get sends GET path?query (path already escaped, query already encoded)
// and returns the body of a 200 or 202 answer, in a buffer the caller gives
// back with releaseBuffer once done with the body; every other status becomes
// a *entropy.APIError.
func (s *Source) get(ctx context.Context, path, query string) (*[]byte, []byte, http.Header, error) {
	return s.send(ctx, http.MethodGet, path, query, nil)
}

// send is get with another method and a JSON request body (nil for none).
func (s *Source) send(ctx context.Context, method, path, query string, payload []byte) (*[]byte, []byte, http.Header, error) {
	op := method + " " + path
	if strings.HasPrefix(path, JobsPath) {
		op = method + " " + JobsPath + "{id}"
	}
	target := s.prefix + path
	if query != "" {
		target += "?" + query
	}
	var reqBody io.Reader
	if payload != nil {
		reqBody = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reqBody)
	if payload != nil && err == nil {
		req.Header.Set("Content-Type", MediaTypeJSON)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("httpsource: %s: %s", op, s.redact(err.Error()))
	}
	if s.jsonOnly {
		req.Header.Set("Accept", MediaTypeJSON)
	} else {
		req.Header.Set("Accept", AcceptBinary)
	}
	if s.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+s.apiKey)
		// One connection per request: bytes a service sends after its
		// answer on a kept-alive connection, which may echo this header,
		// would otherwise be logged by net/http through the standard log
		// package ("Unsolicited response received on idle HTTP channel").
		req.Close = !s.keepAlive
	}
	res, err := s.client.Do(req)
	if err != nil {
		return nil, nil, nil, &ConnError{Op: op, Err: s.redactErr(err)}
	}
	defer res.Body.Close()
	// Read past the cap as many bytes as the longest spelling of the key
	// takes, so that a key a service echoes across the cap is read whole and
	// redacted, not cut in two.
	buf, body, _, readErr := readBody(res.Body, res.ContentLength, s.maxBody+int64(maxSpellingPerByte*len(s.apiKey)))
	tooLong := int64(len(body)) > s.maxBody
	if res.StatusCode == http.StatusOK || res.StatusCode == http.StatusAccepted {
		// A success body is searched for quota members only when it is not
		// the common job shape (decodeJob); headers always.
		s.noteQuota(res.StatusCode, res.Header, nil)
		switch {
		case readErr != nil && ctx.Err() != nil:
			err = &ConnError{Op: op, Err: ctx.Err()}
		case readErr != nil:
			err = s.withRequestID(res.Header, fmt.Errorf("httpsource: %s%s: reading body: %w: %w", op, s.reqIDSuffix(res.Header), ErrMalformed, s.redactErr(readErr)))
		case tooLong:
			err = s.malformed(op, res.Header, "body exceeds %d bytes", s.maxBody)
		default:
			return buf, body, res.Header, nil
		}
		releaseBuffer(buf)
		return nil, nil, nil, err
	}
	// The error keeps its body: copy it out of the buffer, which goes back.
	body = s.trimKeyStart(s.redactBytes(bytes.Clone(body)))
	releaseBuffer(buf)
	if int64(len(body)) > s.maxBody {
		body = s.trimKeyStart(body[:s.maxBody])
	}
	s.noteQuota(res.StatusCode, res.Header, body)
	return nil, nil, nil, s.apiError(res, body)
}

// trimKeyStart drops a start of the API key, in any spelling, left at the end
// of b (a key cut by the read's bound or by a cut of the body).
func (s *Source) trimKeyStart(b []byte) []byte {
	return trimKeyStart(b, s.apiKey)
}

// apiError builds the *entropy.APIError of an error answer, with the API key
// removed from every field.
func (s *Source) apiError(res *http.Response, body []byte) *entropy.APIError {
	body = s.redactBytes(body)
	code, msg, items := parseErrorFields(body, s.safeText)
	e := &entropy.APIError{
		StatusCode: res.StatusCode,
		Code:       code,
		Message:    msg,
		RequestID:  s.requestID(res.Header),
		Details:    items,
	}
	_, hasRA := res.Header[http.CanonicalHeaderKey("Retry-After")]
	e.RetryAfter = retryAfter(res.Header, s.now())
	e.RetryAfterSet = e.RetryAfter > 0 || readableRetryAfter(res.Header.Get("Retry-After"))
	if s.quota429 && res.StatusCode == http.StatusTooManyRequests && !hasRA {
		e.Quota = true
	}
	if len(body) > maxErrorBodyKept {
		body = s.trimKeyStart(body[:maxErrorBodyKept])
	}
	e.Body = body
	return e
}

// retryAfter reads a Retry-After header as delay-seconds or an HTTP-date
// relative to now. Absent, unparseable or past values give 0; a value too big
// for a time.Duration (400 digits, 1e400) gives the longest one, which the
// Provider caps.
func retryAfter(h http.Header, now time.Time) time.Duration {
	return retryafter.Parse(h.Get("Retry-After"), now)
}

// readableRetryAfter reports whether v is a Retry-After value that can be
// read (delay-seconds, possibly 0 or negative, or an HTTP-date, possibly
// past), as opposed to absent or garbage.
func readableRetryAfter(v string) bool {
	v = strings.TrimSpace(v)
	if v == "" {
		return false
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		return f == f // not NaN; too big or too small to represent is readable
	}
	_, err := http.ParseTime(v)
	return err == nil
}

// malformed returns an error wrapping ErrMalformed, with the request
// ID of the answer and the API key removed.
func (s *Source) malformed(op string, hdr http.Header, format string, args ...any) error {
	msg := s.redact(fmt.Sprintf(format, args...))
	return s.withRequestID(hdr, fmt.Errorf("httpsource: %s%s: %s: %w", op, s.reqIDSuffix(hdr), msg, ErrMalformed))
}

// withRequestID returns err carrying the request ID of the answer with
// headers hdr, which RequestID finds; err itself if it had none.
func (s *Source) withRequestID(hdr http.Header, err error) error {
	id := s.requestID(hdr)
	if id == "" || err == nil {
		return err
	}
	return &answerError{requestID: id, err: err}
}

// answerError is an error about an answer, with the answer's request ID.
// Its text is err's, which already names the request ID.
type answerError struct {
	requestID string
	err       error
}

func (e *answerError) Error() string            { return e.err.Error() }
func (e *answerError) Unwrap() error            { return e.err }
func (e *answerError) ServiceRequestID() string { return e.requestID }

// reqIDSuffix returns " (request id X)" for an answer with a request ID.
func (s *Source) reqIDSuffix(hdr http.Header) string {
	if hdr == nil {
		return ""
	}
	if id := s.safeText([]byte(hdr.Get(RequestIDHeader))); id != "" {
		return " (request id " + id + ")"
	}
	return ""
}

// redact removes the API key from a string: the key as itself and in every
// spelling that JSON or Go's %q may give it (see redactKey).
func (s *Source) redact(str string) string {
	if s.apiKey == "" {
		return str
	}
	if b, found := redactKey([]byte(str), s.apiKey); found {
		return string(b)
	}
	return str
}

// redactBytes removes the API key, in every spelling, from a body. b itself
// is never modified.
func (s *Source) redactBytes(b []byte) []byte {
	b, _ = redactKey(b, s.apiKey)
	return b
}

// holdsKey reports whether str holds the API key in any spelling.
func (s *Source) holdsKey(str string) bool {
	_, found := redactKey([]byte(str), s.apiKey)
	return found
}

// safeText is plainText of b with the API key removed: before the text is
// made one line, again after (which may join a key spelled across
// whitespace), and from what a cut of the text leaves at its end. The key
// goes before the cut, so that no cut keeps a part of it.
func (s *Source) safeText(b []byte) string {
	if s.apiKey == "" {
		return plainText(b)
	}
	line := s.redact(oneLine(s.redactBytes(b)))
	return cutLine(line, func(t string) string {
		return string(s.trimKeyStart([]byte(t)))
	})
}

// maxCauseText bounds the text of a network error's cause: net/http quotes
// a malformed header line of the answer whole, up to its 10 MB limit on
// headers, and that text would go into every error, label and log line.
const maxCauseText = 1024

// redactErr returns err unchanged if its text does not hold the API key and
// is at most maxCauseText bytes, and otherwise an error with the key removed
// from its text, cut to that bound, that still unwraps to err (so errors.Is
// finds context.DeadlineExceeded and friends).
func (s *Source) redactErr(err error) error {
	if err == nil {
		return nil
	}
	msg, changed := redactKey([]byte(err.Error()), s.apiKey)
	if len(msg) > maxCauseText {
		msg = s.trimKeyStart(msg[:maxCauseText])
		for i := 0; i < utf8.UTFMax-1 && len(msg) > 0; i++ { // a rune the cut split
			if r, _ := utf8.DecodeLastRune(msg); r != utf8.RuneError {
				break
			}
			msg = msg[:len(msg)-1]
		}
		msg, changed = append(msg, "…"...), true
	}
	if !changed {
		return err
	}
	return &redactedError{msg: string(msg), err: err}
}

// redactedError is an error whose text had the API key removed.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
