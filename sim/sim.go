// Package sim is an in-memory server of the reference HTTP protocol of
// verifiable entropy (docs/protocol.md), with faults
// that can be switched on. It is the embedded default of the entropy command
// and the counterpart of package httpsource in tests.
//
// A Server is an http.Handler; Start serves it on a loopback port. It signs
// every job with its own Ed25519 key, charges API keys a balance in bytes
// (402 when spent, with the balance left in the body), can rate-limit
// requests (429 with Retry-After), queue jobs (202, then running, then
// completed), and keeps every job for
// GET /v1/jobs/{id}. Faults are scripted (Script: a fixed sequence, one per
// entropy request) or drawn with probabilities (SetRandomFaults). Requests
// records what clients sent and when, without the key text.
//
// It also serves batches (POST /v1/entropy/batch: one job per item, each
// signed for its own nonce, with per-item faults from ScriptItems and a
// balance that may run out midway), and with WithQuota tells every answer's
// quota in X-RateLimit-* headers.
//
// The server uses package httpsource's wire types, so the client and the
// simulator cannot drift apart.
package sim

import (
	"bytes"
	"crypto/ed25519"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/internal/loopback"
	"github.com/provenrand/entropy/internal/retryafter"
)

// SourceName is the Source name of blocks from the simulator's own client
// (Server.Source), so that no label mistakes it for a real service.
const SourceName = "simulator"

// Request is one request the server received. It never holds the key text.
type Request struct {
	Time       time.Time // when it arrived, by the server's clock
	Method     string
	Path       string
	Size       int       // the size parameter of an entropy request (0 if absent or invalid)
	Authorized bool      // it carried a known API key
	Status     int       // the answer's status; 0 for a dropped connection or one left unanswered
	Fault      FaultKind // the fault applied to it
	RequestID  string    // the X-Request-Id of the answer
	JobID      string    // the job an entropy request created, if any
	// RetryAfter is the hold the answer's Retry-After header asked for
	// (an HTTP-date is read against the server's clock); 0 if none.
	RetryAfter time.Duration
	// Items are the items of a batch request (POST /v1/entropy/batch), in
	// order; nil for other requests.
	Items []BatchItem
}

// BatchItem is one item of a batch request as the server answered it.
type BatchItem struct {
	Size  int
	Fault FaultKind // the item's fault (ScriptItems, or a random draw)
	JobID string    // the job made for it; "" if none was (balance spent)
	// Failed: the item was answered as a failure (a failed job, or no
	// balance left for it).
	Failed bool
}

// Option configures a Server.
type Option func(*Server)

// WithSeed makes the server deterministic: its key pair, job IDs and entropy
// all derive from seed. Without it they come from crypto/rand.
func WithSeed(seed int64) Option {
	return func(s *Server) { s.seed, s.seeded = seed, true }
}

// WithKey registers an API key with a balance in bytes, as AddKey does.
func WithKey(key string, balance int64) Option {
	return func(s *Server) { s.keys[key] = balance }
}

// WithRateLimit limits entropy requests, over all keys, to r per second with
// bursts of burst. A request over the limit gets 429 with a Retry-After of
// whole seconds. The default is no limit.
func WithRateLimit(r rate.Limit, burst int) Option {
	return func(s *Server) { s.SetRateLimit(r, burst) }
}

// WithQuota gives entropy requests, over all keys, a quota of limit per
// window (a fixed window, on real time). Every entropy answer then carries
// X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset (whole
// seconds until the window starts afresh, rounded up); a request over the
// quota gets 429 with a Retry-After until the reset. limit <= 0 or
// window <= 0 means no quota.
func WithQuota(limit int, window time.Duration) Option {
	return func(s *Server) {
		if limit > 0 && window > 0 {
			s.quotaLimit, s.quotaWindow = limit, window
		}
	}
}

// WithQueuedJobs makes a fraction p of healthy jobs answer 202 queued and
// complete after polls "running" polls.
func WithQueuedJobs(p float64, polls int) Option {
	return func(s *Server) { s.queueP, s.queuePolls = p, max(polls, 0) }
}

// WithLatency delays every entropy answer by d.
func WithLatency(d time.Duration) Option {
	return func(s *Server) { s.latency = d }
}

// WithClock sets the clock of job timestamps and Request times (default:
// the system clock). The rate limit and latency run on real time. It takes
// the entropy.Clock that every WithClock of the module takes;
// entropy.NowFunc adapts a plain time function.
func WithClock(clk entropy.Clock) Option {
	return func(s *Server) {
		if clk != nil {
			s.now = clk.Now
		}
	}
}

// WithErrorShape sets the body shape of the server's own error answers (401,
// 402, 429, 400, 422, 404). Default ShapeNested.
func WithErrorShape(shape BodyShape) Option {
	return func(s *Server) { s.shape = shape }
}

// Server is the simulator. Its methods are safe for concurrent use.
//
// Make it with New: a Server that New did not make (a zero Server) has no
// key pair to sign with. It serves nothing (Start, Listen and Source return
// an error, ServeHTTP answers 500) and its PublicKey is nil; its other
// methods work.
type Server struct {
	seed   int64
	seeded bool
	now    func() time.Time
	priv   ed25519.PrivateKey
	pub    ed25519.PublicKey
	shape  BodyShape

	mu       sync.Mutex // guards everything below
	rng      *rand.Rand
	keys     map[string]int64
	jobs     map[string]*job
	requests []Request
	limiter  *rate.Limiter
	// The quota of WithQuota: quotaUsed requests in the window that
	// started at quotaStart.
	quotaLimit  int
	quotaWindow time.Duration
	quotaStart  time.Time
	quotaUsed   int
	queueP      float64
	queuePolls  int
	latency     time.Duration
	script      []Fault
	itemScript  []Fault // faults of batch items, one per item (ScriptItems)
	draw        *faultDraw
	sourceKey   string

	hs        *http.Server
	ln        net.Listener
	served    chan struct{}
	transport *http.Transport
	baseURL   string
}

// job is a job the server keeps for GET /v1/jobs/{id}. All but pending is
// set when the job is made and never changes.
type job struct {
	id      string
	failure *httpsource.ErrorDetail // failed jobs: the error
	// errForm: the failed job answers in the other asynchronous form
	// (status "error", with code, message and details beside it).
	errForm bool
	details []httpsource.ErrorItemBody
	data    []byte // completed jobs: the entropy
	nonce   []byte // the request's nonce (v2); nil: a v1 job
	sig     []byte // completed jobs: the signature
	ts      string // completed jobs: the timestamp, RFC 3339
	pending int    // "running" answers still to give before the final state
}

// response returns the final state of the job (completed or failed) in its
// JSON form.
func (j *job) response() httpsource.JobResponse {
	if j.failure != nil {
		e := *j.failure
		return httpsource.JobResponse{JobID: j.id, Status: httpsource.StatusFailed, Error: &e}
	}
	return httpsource.JobResponse{
		JobID:     j.id,
		Status:    httpsource.StatusCompleted,
		Entropy:   base64.StdEncoding.EncodeToString(j.data),
		Nonce:     httpsource.EncodeNonce(j.nonce),
		Timestamp: j.ts,
		Signature: base64.StdEncoding.EncodeToString(j.sig),
	}
}

// New returns a server with the given options. It serves nothing until
// Start, or until it is mounted as a handler.
func New(opts ...Option) *Server {
	s := &Server{now: time.Now, keys: map[string]int64{}, jobs: map[string]*job{}, shape: ShapeNested}
	for _, opt := range opts {
		if opt != nil {
			opt(s)
		}
	}
	var seed [32]byte
	if s.seeded {
		binary.LittleEndian.PutUint64(seed[:], uint64(s.seed))
		copy(seed[8:], "provenrand/sim")
	} else {
		_, _ = crand.Read(seed[:])
	}
	s.rng = rand.New(rand.NewChaCha8(seed))
	var keySeed [ed25519.SeedSize]byte
	for i := range keySeed {
		keySeed[i] = byte(s.rng.Uint32())
	}
	s.priv = ed25519.NewKeyFromSeed(keySeed[:])
	s.pub = s.priv.Public().(ed25519.PublicKey)
	return s
}

// errNotMade is the error of a Server that New did not make: it has no key
// pair to sign jobs with.
var errNotMade = errors.New("sim: a Server must be made by New")

// made reports whether New made s (its key pair is set there, and never
// changes).
func (s *Server) made() bool { return s.priv != nil }

// PublicKey returns the key that verifies the server's signatures, or nil
// for a Server that New did not make.
func (s *Server) PublicKey() ed25519.PublicKey { return s.pub }

// AddKey registers an API key, or sets its balance, in bytes of entropy.
func (s *Server) AddKey(key string, balance int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = map[string]int64{}
	}
	s.keys[key] = balance
}

// Balance returns the balance of a key and whether the key is known.
func (s *Server) Balance(key string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.keys[key]
	return b, ok
}

// SetRateLimit sets the server-side rate limit of entropy requests (r per
// second, bursts of burst); r <= 0 removes it.
func (s *Server) SetRateLimit(r rate.Limit, burst int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r <= 0 || r == rate.Inf {
		s.limiter = nil
		return
	}
	s.limiter = rate.NewLimiter(r, max(burst, 1))
}

// SetLatency sets the delay of every entropy answer.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Script queues faults for the next entropy requests, one per request, after
// any still queued. When the script is used up the server is healthy again
// (or draws random faults, if set). Requests refused with 401 or by the rate
// limit do not consume a fault.
//
// A fault the server cannot answer with is refused: Script then returns an
// error and queues none of faults. That is a FaultStatus whose Status is
// not the status of a final HTTP answer, 200..599 (0 takes the default,
// 503).
func (s *Server) Script(faults ...Fault) error {
	for i, f := range faults {
		if err := f.check(); err != nil {
			return fmt.Errorf("sim: Script: fault %d: %w", i, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, faults...)
	return nil
}

// ClearFaults drops the rest of the script and turns random faults off: the
// server is healthy from the next request on.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script, s.itemScript = nil, nil
	s.draw = nil
}

// SetRandomFaults makes every entropy request not covered by the script draw
// a fault: kind k with probability probs[k], healthy otherwise. The draw is
// deterministic for a given seed and order of requests. An empty map turns
// random faults off. Probabilities must be in 0..1 and add up to at most 1.
func (s *Server) SetRandomFaults(seed int64, probs map[FaultKind]float64) error {
	d, err := newFaultDraw(seed, probs)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(d.kinds) == 0 {
		d = nil
	}
	s.draw = d
	return nil
}

// Requests returns a copy of every request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// EntropyRequests returns the requests that asked for entropy among
// Requests: GET /v1/entropy and POST /v1/entropy/batch (a Provider's
// default refill from a source that offers batches). Path tells them
// apart; a batch's Size is the sum of its items' sizes, and Items lists
// them.
func (s *Server) EntropyRequests() []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Path == httpsource.EntropyPath || r.Path == httpsource.BatchPath {
			out = append(out, r)
		}
	}
	return out
}

// Job returns the final state of a job (completed or failed) as the server
// keeps it, and whether the job exists.
func (s *Server) Job(id string) (httpsource.JobResponse, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return httpsource.JobResponse{}, false
	}
	return j.response(), true
}

// Start serves on a free loopback port (127.0.0.1:0) and returns the base URL.
func (s *Server) Start() (string, error) { return s.Listen("127.0.0.1:0") }

// Listen serves on addr, which must be a loopback address (127.0.0.1:8080,
// [::1]:0, localhost:8080), and returns the base URL. A server is started at
// most once.
func (s *Server) Listen(addr string) (string, error) {
	if !s.made() {
		return "", errNotMade
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("sim: address %q: %w", addr, err)
	}
	if !loopback.Is(host) {
		return "", fmt.Errorf("sim: address %q is not loopback; the simulator serves only this machine", addr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hs != nil {
		return "", errors.New("sim: server already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("sim: %w", err)
	}
	s.ln = ln
	s.hs = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.served = make(chan struct{})
	s.baseURL = "http://" + ln.Addr().String()
	go func() {
		defer close(s.served)
		_ = s.hs.Serve(ln)
	}()
	return s.baseURL, nil
}

// URL returns the base URL of a started server, or "".
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.baseURL
}

// Close stops a started server and closes its connections and those of the
// clients Source made. It is safe to call more than once, and on a server
// never started.
func (s *Server) Close() error {
	s.mu.Lock()
	hs, served, tr := s.hs, s.served, s.transport
	s.mu.Unlock()
	if tr != nil {
		tr.CloseIdleConnections()
	}
	if hs == nil {
		return nil
	}
	err := hs.Close()
	<-served
	if tr != nil {
		tr.CloseIdleConnections()
	}
	return err
}

// Source returns an httpsource.Source wired to the server: it starts the
// server on a loopback port if needed, registers a key of its own with an
// unlimited balance, pins the server's public key and names its blocks
// "simulator". opts come after these and may override them.
func (s *Server) Source(opts ...httpsource.Option) (*httpsource.Source, error) {
	base := s.URL()
	if base == "" {
		var err error
		if base, err = s.Start(); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	if s.sourceKey == "" {
		var b [12]byte
		for i := range b {
			b[i] = byte(s.rng.Uint32())
		}
		s.sourceKey = "sim-" + hex.EncodeToString(b[:])
		s.keys[s.sourceKey] = math.MaxInt64
	}
	if s.transport == nil {
		s.transport = &http.Transport{}
	}
	key, tr := s.sourceKey, s.transport
	s.mu.Unlock()
	all := append([]httpsource.Option{
		httpsource.WithAPIKey(key),
		httpsource.WithPublicKey(s.pub),
		httpsource.WithName(SourceName),
		httpsource.WithHTTPClient(&http.Client{Transport: tr}),
		httpsource.WithPollInterval(5*time.Millisecond, 200*time.Millisecond),
	}, opts...)
	return httpsource.New(base, all...)
}

// ServeHTTP serves the reference protocol. A Server that New did not make
// answers every request 500, with the plain-text body "sim: a Server must
// be made by New".
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.made() {
		http.Error(w, errNotMade.Error(), http.StatusInternalServerError)
		return
	}
	key := requestKey(r)
	s.mu.Lock()
	_, authorized := s.keys[key]
	idx := len(s.requests)
	reqID := fmt.Sprintf("req-%06d", idx+1)
	s.requests = append(s.requests, Request{
		Time: s.now(), Method: r.Method, Path: r.URL.Path, Authorized: authorized, RequestID: reqID,
	})
	s.mu.Unlock()
	w.Header().Set(httpsource.RequestIDHeader, reqID)

	if r.Method == http.MethodPost && r.URL.Path == httpsource.BatchPath {
		s.serveBatch(w, r, idx, key, authorized)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		s.writeError(w, idx, http.StatusMethodNotAllowed, s.shape, "MethodNotAllowed", "Only GET is served.")
		return
	}
	switch {
	case r.URL.Path == httpsource.EntropyPath:
		s.serveEntropy(w, r, idx, key, authorized)
	case strings.HasPrefix(r.URL.Path, httpsource.JobsPath):
		s.serveJob(w, r, idx, strings.TrimPrefix(r.URL.Path, httpsource.JobsPath))
	case r.URL.Path == httpsource.PublicKeyPath:
		s.writeJSON(w, idx, http.StatusOK, httpsource.PublicKeyResponse{
			Algorithm: "ed25519", PublicKey: base64.StdEncoding.EncodeToString(s.pub),
		}, FaultNone)
	default:
		code, msg := statusText(http.StatusNotFound)
		s.writeError(w, idx, http.StatusNotFound, s.shape, code, msg)
	}
}

// requestKey returns the API key of a request: Bearer token or X-API-Key.
func requestKey(r *http.Request) string {
	if auth := r.Header.Get("Authorization"); auth != "" {
		if tok, ok := strings.CutPrefix(auth, "Bearer "); ok {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	return r.Header.Get("X-API-Key")
}

// serveEntropy answers GET /v1/entropy?size=N&nonce=HEX. A job made for a
// request with a nonce is signed in protocol v2 (bound to the nonce, size
// and timestamp); one without a nonce, from a client of protocol v1, is
// signed in v1.
func (s *Server) serveEntropy(w http.ResponseWriter, r *http.Request, idx int, key string, authorized bool) {
	size, sizeErr := strconv.Atoi(r.URL.Query().Get("size"))
	var nonce []byte
	var nonceErr error
	if v, ok := r.URL.Query()[httpsource.NonceParam]; ok {
		if len(v) != 1 {
			nonceErr = errors.New("give one nonce")
		} else {
			nonce, nonceErr = httpsource.DecodeNonce(v[0])
		}
	}
	s.mu.Lock()
	if sizeErr == nil {
		s.requests[idx].Size = size
	}
	if !s.admitLocked(w, idx, authorized) {
		return
	}
	switch {
	case sizeErr != nil:
		s.mu.Unlock()
		s.writeError(w, idx, http.StatusBadRequest, s.shape, "BadRequest", "size must be an integer")
		return
	case nonceErr != nil:
		s.mu.Unlock()
		s.writeError(w, idx, http.StatusBadRequest, s.shape, "BadRequest", nonceErr.Error())
		return
	case size < httpsource.MinSize || size > httpsource.MaxSize:
		s.mu.Unlock()
		s.writeError(w, idx, http.StatusUnprocessableEntity, s.shape, "Validation",
			fmt.Sprintf("size must be in %d..%d", httpsource.MinSize, httpsource.MaxSize))
		return
	}
	f, ok := s.startFault(w, r, idx)
	if !ok {
		return
	}

	s.mu.Lock()
	if f.Kind == FaultExhausted {
		s.keys[key] = 0
	}
	if bal := s.keys[key]; bal < int64(size) {
		s.mu.Unlock()
		s.writePaymentRequired(w, idx, bal)
		return
	}
	j, id := s.newJob(size, nonce, f)
	s.requests[idx].JobID = id
	failing := f.Kind == FaultJobFailed || f.Kind == FaultJobError
	if !failing {
		s.keys[key] -= int64(size)
	}
	queued := failing || f.Kind == FaultQueued ||
		(s.queueP > 0 && s.rng.Float64() < s.queueP)
	if queued && !failing && f.Kind != FaultQueued {
		j.pending = s.queuePolls
	}
	s.mu.Unlock()

	if queued {
		s.writeJSON(w, idx, http.StatusAccepted, httpsource.JobResponse{JobID: id, Status: httpsource.StatusQueued}, f.Kind)
		return
	}
	s.writeFinal(w, r, idx, j, f.Kind)
}

// admitLocked refuses entropy request idx if it is not authorized (401),
// then applies the quota (WithQuota) and the rate limit to it, setting the
// quota headers. s.mu must be held; on a refusal it is released, the 401 or
// 429 written, and admitLocked returns false.
func (s *Server) admitLocked(w http.ResponseWriter, idx int, authorized bool) bool {
	if !authorized {
		s.mu.Unlock()
		code, msg := statusText(http.StatusUnauthorized)
		s.writeError(w, idx, http.StatusUnauthorized, s.shape, code, msg)
		return false
	}
	if s.quotaLimit > 0 {
		now := time.Now()
		if s.quotaStart.IsZero() || now.Sub(s.quotaStart) >= s.quotaWindow {
			s.quotaStart, s.quotaUsed = now, 0
		}
		reset := max(int(math.Ceil(s.quotaStart.Add(s.quotaWindow).Sub(now).Seconds())), 1)
		h := w.Header()
		h.Set("X-RateLimit-Limit", strconv.Itoa(s.quotaLimit))
		h.Set("X-RateLimit-Reset", strconv.Itoa(reset))
		if s.quotaUsed >= s.quotaLimit {
			s.mu.Unlock()
			h.Set("X-RateLimit-Remaining", "0")
			s.writeTooMany(w, idx, reset)
			return false
		}
		s.quotaUsed++
		h.Set("X-RateLimit-Remaining", strconv.Itoa(s.quotaLimit-s.quotaUsed))
	}
	if s.limiter != nil {
		now := time.Now()
		if res := s.limiter.ReserveN(now, 1); res.DelayFrom(now) > 0 {
			wait := res.DelayFrom(now)
			res.CancelAt(now)
			s.mu.Unlock()
			s.writeTooMany(w, idx, max(int(math.Ceil(wait.Seconds())), 1))
			return false
		}
	}
	return true
}

// writeTooMany answers request idx with 429 and a Retry-After of secs
// seconds.
func (s *Server) writeTooMany(w http.ResponseWriter, idx, secs int) {
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	s.setRetryAfter(idx, time.Duration(secs)*time.Second)
	code, msg := statusText(http.StatusTooManyRequests)
	s.writeError(w, idx, http.StatusTooManyRequests, s.shape, code, msg)
}

// startFault draws the fault of request idx and records it, releases s.mu
// (which must be held), waits out the answer's latency and writes the
// whole-request faults (FaultStatus, FaultDrop). ok is false when the
// request is answered or its client has gone; otherwise the caller answers
// it, with f applied.
func (s *Server) startFault(w http.ResponseWriter, r *http.Request, idx int) (f Fault, ok bool) {
	f = s.nextFault()
	s.requests[idx].Fault = f.Kind
	latency := s.latency
	if f.Kind == FaultLatency {
		latency += f.Latency
	}
	s.mu.Unlock()

	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return f, false
		}
	}

	switch f.Kind {
	case FaultStatus:
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
			s.setRetryAfter(idx, s.retryAfterHold(f.RetryAfter))
		}
		s.writeErrorItems(w, idx, f.Status, f.Shape, f.Code, f.Message, f.Details)
		return f, false
	case FaultDrop:
		s.drop(w)
		return f, false
	}
	return f, true
}

// nextFault pops the script or draws a random fault. s.mu must be held.
func (s *Server) nextFault() Fault {
	var f Fault
	switch {
	case len(s.script) > 0:
		f = s.script[0]
		s.script = s.script[1:]
	case s.draw != nil:
		f = s.draw.next()
	}
	return f.withDefaults()
}

// newJob makes and keeps a job of size bytes for a request with nonce (nil:
// a v1 request) with fault f applied to its final state. s.mu must be held.
func (s *Server) newJob(size int, nonce []byte, f Fault) (*job, string) {
	var idb [8]byte
	for i := range idb {
		idb[i] = byte(s.rng.Uint32())
	}
	id := "job-" + hex.EncodeToString(idb[:])
	j := &job{id: id, nonce: nonce}
	s.jobs[id] = j
	if f.Kind == FaultJobFailed || f.Kind == FaultJobError {
		j.failure = &httpsource.ErrorDetail{Code: f.Code, Message: f.Message}
		j.errForm, j.details = f.Kind == FaultJobError, f.Details
		return j, id
	}
	if f.Kind == FaultQueued {
		j.pending = f.Polls
	}
	n := size
	if f.Kind == FaultWrongLength {
		if n < httpsource.MaxSize {
			n++
		} else {
			n--
		}
	}
	data := make([]byte, n)
	switch f.Kind {
	case FaultStuck:
		v := byte(s.rng.Uint32())
		for i := range data {
			data[i] = v
		}
	case FaultBiased:
		for i := range data {
			if s.rng.Uint32()&1 == 0 {
				data[i] = 0
			} else {
				data[i] = byte(s.rng.Uint32())
			}
		}
	default:
		for i := range data {
			data[i] = byte(s.rng.Uint32())
		}
	}
	ts := s.now().UTC().Format(time.RFC3339Nano)
	var sig []byte
	if nonce != nil {
		sig = ed25519.Sign(s.priv, httpsource.SignedMessageV2(id, nonce, len(data), ts, data))
	} else {
		sig = ed25519.Sign(s.priv, httpsource.SignedMessage(id, data))
	}
	if f.Kind == FaultBadSignature {
		sig[s.rng.IntN(len(sig))] ^= 1 << s.rng.IntN(8)
	}
	j.data, j.sig, j.ts = data, sig, ts
	return j, id
}

// serveJob answers GET /v1/jobs/{id}. Jobs need no API key: anyone may audit.
func (s *Server) serveJob(w http.ResponseWriter, r *http.Request, idx int, id string) {
	s.mu.Lock()
	j, ok := s.jobs[id]
	running := false
	if ok && j.pending > 0 {
		j.pending--
		running = true
	}
	s.mu.Unlock()
	switch {
	case !ok:
		s.writeError(w, idx, http.StatusNotFound, s.shape, "NotFound", "no job "+strconv.Quote(id))
	case running:
		s.writeJSON(w, idx, http.StatusOK, httpsource.JobResponse{JobID: id, Status: httpsource.StatusRunning}, FaultNone)
	default:
		s.writeFinal(w, r, idx, j, FaultNone)
	}
}

// writeFinal answers with the final state of job j (200), breaking the body
// as fault asks. A completed job goes in the binary form to a client that
// accepts it, unless the fault is broken JSON (which then comes as JSON: a
// service may always answer JSON); everything else is JSON.
func (s *Server) writeFinal(w http.ResponseWriter, r *http.Request, idx int, j *job, fault FaultKind) {
	if j.failure != nil && j.errForm {
		s.writeJSON(w, idx, http.StatusOK, httpsource.JobErrorResponse{
			JobID: j.id, Status: httpsource.StatusError, Code: j.failure.Code, Message: j.failure.Message, Details: j.details,
		}, fault)
		return
	}
	if j.failure != nil || fault == FaultMalformedJSON || !httpsource.AcceptsBinary(r.Header.Get("Accept")) {
		s.writeJSON(w, idx, http.StatusOK, j.response(), fault)
		return
	}
	h := w.Header()
	h.Set("Content-Type", httpsource.MediaTypeBinary)
	h.Set("Content-Length", strconv.Itoa(len(j.data)))
	h.Set(httpsource.JobIDHeader, j.id)
	h.Set(httpsource.JobStatusHeader, httpsource.StatusCompleted)
	h.Set(httpsource.TimestampHeader, j.ts)
	if j.nonce != nil {
		h.Set(httpsource.NonceHeader, httpsource.EncodeNonce(j.nonce))
	}
	h.Set(httpsource.SignatureHeader, base64.StdEncoding.EncodeToString(j.sig))
	body := j.data
	if fault == FaultTruncate {
		body = body[:len(body)/2]
	}
	s.setStatus(idx, http.StatusOK)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// drop closes the connection in the middle of the answer's status line.
//
// It sends those few bytes first on purpose: net/http's client silently
// replays a GET on a reused keep-alive connection that closes before any
// answer byte arrives, which would hide the fault (and send one request more
// than the caller made).
func (s *Server) drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, buf, err := hj.Hijack(); err == nil {
			_, _ = buf.WriteString("HTTP/1.1 200")
			_ = buf.Flush()
			_ = conn.Close()
			return
		}
	}
	// Without a hijackable connection (HTTP/2, a recorder), abort the
	// handler: net/http closes the stream without a complete answer.
	panic(http.ErrAbortHandler)
}

// writeJSON writes v as JSON with status, breaking the body as fault asks.
func (s *Server) writeJSON(w http.ResponseWriter, idx, status int, v any, fault FaultKind) {
	body, err := json.Marshal(v)
	if err != nil {
		s.writeError(w, idx, http.StatusInternalServerError, s.shape, "InternalServerError", "encoding failed")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	switch fault {
	case FaultTruncate:
		body = body[:len(body)/2]
	case FaultMalformedJSON:
		body = bytes.Replace(body, []byte(`":`), []byte(`";`), 1)
	}
	s.setStatus(idx, status)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeError writes an error answer in shape.
func (s *Server) writeError(w http.ResponseWriter, idx, status int, shape BodyShape, code, message string) {
	s.writeErrorItems(w, idx, status, shape, code, message, nil)
}

// writeErrorItems is writeError with the items of a list shape.
func (s *Server) writeErrorItems(w http.ResponseWriter, idx, status int, shape BodyShape, code, message string, details []httpsource.ErrorItemBody) {
	s.writeErrorBody(w, idx, status, shape, code, message, details, nil)
}

// writePaymentRequired answers 402 to a request the key's balance cannot
// pay for, with what is left: a top-level "balance" member (in bytes of
// entropy) beside the error of the server's shape, or a sentence of the
// plain-text one.
func (s *Server) writePaymentRequired(w http.ResponseWriter, idx int, balance int64) {
	code, msg := statusText(http.StatusPaymentRequired)
	if s.shape == ShapeText {
		msg = fmt.Sprintf("%s Balance: %d bytes.", msg, balance)
	}
	s.writeErrorBody(w, idx, http.StatusPaymentRequired, s.shape, code, msg, nil, map[string]any{"balance": balance})
}

// writeErrorBody writes an error answer of shape; extra, if set, adds
// top-level members to a JSON body.
func (s *Server) writeErrorBody(w http.ResponseWriter, idx, status int, shape BodyShape, code, message string, details []httpsource.ErrorItemBody, extra map[string]any) {
	var v any
	switch shape {
	case ShapeStatus:
		v = httpsource.StatusErrorBody{Error: code, Message: message, StatusCode: status}
	case ShapeDetails:
		v = httpsource.DetailsErrorBody{Details: message}
	case ShapeCode:
		v = httpsource.CodeErrorBody{Code: code, Message: message}
	case ShapeDetailsList, ShapeFastAPI:
		items := details
		if len(items) == 0 {
			items = []httpsource.ErrorItemBody{{Field: "size", Message: message, Type: code}}
		}
		if shape == ShapeDetailsList {
			v = httpsource.DetailsListErrorBody{Details: items}
			break
		}
		fa := httpsource.FastAPIErrorBody{Detail: make([]httpsource.FastAPIErrorItem, len(items))}
		for i, it := range items {
			fa.Detail[i] = httpsource.FastAPIErrorItem{Loc: []string{"query", it.Field}, Msg: it.Message, Type: it.Type}
		}
		v = fa
	case ShapeText:
		s.setStatus(idx, status)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = fmt.Fprintln(w, message)
		return
	default:
		v = httpsource.NestedErrorBody{Error: httpsource.ErrorDetail{Code: code, Message: message}}
	}
	body, _ := json.Marshal(v)
	if len(extra) > 0 {
		var m map[string]any
		if json.Unmarshal(body, &m) == nil {
			for k, x := range extra {
				m[k] = x
			}
			body, _ = json.Marshal(m)
		}
	}
	s.setStatus(idx, status)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// setStatus records the status of request idx.
// setRetryAfter records the hold a Retry-After header asked for.
func (s *Server) setRetryAfter(idx int, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[idx].RetryAfter = d
}

// retryAfterHold reads a Retry-After value (seconds or HTTP-date) as the
// hold it asks for, by the server's clock; 0 if it cannot be read.
func (s *Server) retryAfterHold(v string) time.Duration {
	return retryafter.Parse(v, s.now())
}

func (s *Server) setStatus(idx, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[idx].Status = status
}
