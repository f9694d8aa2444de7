package drandsource

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/bls"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// vectorFile is testdata/drand.json, a copy of the project's shared drand
// vectors: the public parameters of both mainnet chains and one real beacon
// of each.
type vectorFile struct {
	Chains []struct {
		Name        string `json:"name"`
		Scheme      string `json:"scheme"`
		Hash        string `json:"hash"`
		PublicKey   string `json:"public_key"`
		Period      int64  `json:"period"`
		GenesisTime int64  `json:"genesis_time"`
		GroupHash   string `json:"group_hash"`
		BeaconID    string `json:"beacon_id"`
	} `json:"chains"`
	Beacons []struct {
		Chain             string `json:"chain"`
		Round             uint64 `json:"round"`
		PreviousSignature string `json:"previous_signature"`
		Signature         string `json:"signature"`
		Randomness        string `json:"randomness"`
	} `json:"beacons"`
}

// vector is one chain of the vectors with its real beacon.
type vector struct {
	chain ChainInfo
	beacon
}

// beacon is a beacon in raw bytes.
type beacon struct {
	round      uint64
	prevSig    []byte
	sig        []byte
	randomness []byte
}

// json returns the beacon's wire form.
func (b beacon) json() beaconJSON {
	return beaconJSON{
		Round:             b.round,
		Randomness:        hex.EncodeToString(b.randomness),
		Signature:         hex.EncodeToString(b.sig),
		PreviousSignature: hex.EncodeToString(b.prevSig),
	}
}

// quicknetAtRound returns the quicknet vector and a clock stopped at the
// time its round is due.
func quicknetAtRound(t testing.TB) (vector, func() time.Time) {
	t.Helper()
	q := loadVectors(t)["quicknet"]
	return q, fixedClock(q.chain.RoundTime(q.round))
}

// loadVectors reads testdata/drand.json, keyed by chain name.
func loadVectors(t testing.TB) map[string]vector {
	t.Helper()
	raw, err := os.ReadFile("testdata/drand.json")
	require.NoError(t, err)
	var f vectorFile
	require.NoError(t, json.Unmarshal(raw, &f))
	out := map[string]vector{}
	for _, c := range f.Chains {
		out[c.Name] = vector{chain: ChainInfo{
			Scheme:      c.Scheme,
			PublicKey:   unhex(t, c.PublicKey),
			Period:      time.Duration(c.Period) * time.Second,
			GenesisTime: c.GenesisTime,
			GroupHash:   unhex(t, c.GroupHash),
			BeaconID:    c.BeaconID,
			Hash:        unhex(t, c.Hash),
		}}
	}
	for _, b := range f.Beacons {
		v, ok := out[b.Chain]
		require.True(t, ok, "beacon of unknown chain %q", b.Chain)
		v.beacon = beacon{
			round:      b.Round,
			prevSig:    unhex(t, b.PreviousSignature),
			sig:        unhex(t, b.Signature),
			randomness: unhex(t, b.Randomness),
		}
		out[b.Chain] = v
	}
	require.Len(t, out, 2)
	return out
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// flip returns a copy of b with bit i flipped.
func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i/8] ^= 1 << (i % 8)
	return c
}

// signer is a drand chain made up for tests, with its own key, so that tests
// can have as many valid rounds as they need. The real chains' vectors hold
// one beacon each.
type signer struct {
	info    ChainInfo
	sign    func(round uint64, prevSig []byte) []byte
	mu      sync.Mutex
	chained map[uint64][]byte // chained scheme: signature of each round
}

// newSigner makes a test chain of the given scheme, period and genesis.
func newSigner(t testing.TB, scheme string, period time.Duration, genesis int64) *signer {
	t.Helper()
	ikm := sha256.Sum256([]byte("drandsource test chain " + scheme))
	s := &signer{chained: map[uint64][]byte{}}
	var pk []byte
	switch scheme {
	case SchemeUnchainedG1:
		sk, err := bls.KeyGen[bls.KeyG2SigG1](ikm[:], nil, nil)
		require.NoError(t, err)
		pk, err = sk.PublicKey().MarshalBinary()
		require.NoError(t, err)
		s.sign = func(round uint64, _ []byte) []byte { return bls.Sign(sk, unchainedMessage(round)) }
	case SchemeChained:
		sk, err := bls.KeyGen[bls.KeyG1SigG2](ikm[:], nil, nil)
		require.NoError(t, err)
		pk, err = sk.PublicKey().MarshalBinary()
		require.NoError(t, err)
		s.sign = func(round uint64, prev []byte) []byte { return bls.Sign(sk, chainedMessage(prev, round)) }
	default:
		t.Fatalf("no test signer for scheme %q", scheme)
	}
	group := sha256.Sum256([]byte("drandsource test group"))
	s.info = ChainInfo{
		Scheme:      scheme,
		PublicKey:   pk,
		Period:      period,
		GenesisTime: genesis,
		GroupHash:   group[:],
		BeaconID:    "test-" + scheme,
	}
	s.info.Hash = s.info.ComputeHash()
	return s
}

// beacon returns the signed beacon of round.
func (s *signer) beacon(round uint64) beacon {
	var prev []byte
	if s.info.Scheme == SchemeChained {
		prev = s.chainedSig(round - 1)
	}
	sig := s.sign(round, prev)
	r := sha256.Sum256(sig)
	return beacon{round: round, prevSig: prev, sig: sig, randomness: r[:]}
}

// chainedSig returns the signature of round of a chained test chain (the
// group hash for round 0), signing every round before it once.
func (s *signer) chainedSig(round uint64) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if round == 0 {
		return s.info.GroupHash
	}
	start := round
	for start > 0 {
		if _, ok := s.chained[start]; ok {
			break
		}
		start--
	}
	for r := start + 1; r <= round; r++ {
		prev := s.info.GroupHash
		if r > 1 {
			prev = s.chained[r-1]
		}
		s.chained[r] = s.sign(r, prev)
	}
	return s.chained[round]
}

// relayChain is one chain a testRelay serves: fixed beacons (the vectors),
// or every due round of a signer.
type relayChain struct {
	info    ChainInfo
	beacons map[uint64]beacon
	signer  *signer
}

// testRelay is a local drand HTTP relay on httptest, serving chains from
// memory with switchable faults. Its clock decides which rounds are due.
type testRelay struct {
	srv *httptest.Server
	now func() time.Time

	mu       sync.Mutex
	chains   map[string]*relayChain // by chain hash in hex
	paths    []string               // every request path, in order
	status   int                    // answer every request with this status, if not 0
	tamper   func(asked uint64, b *beaconJSON)
	infoEdit func(*infoJSON)
	body     []byte // answer beacon requests with this body, if not nil
}

// newTestRelay starts a relay serving the given chains; it is closed when
// the test ends.
func newTestRelay(t testing.TB, now func() time.Time, chains ...*relayChain) *testRelay {
	t.Helper()
	r := &testRelay{now: now, chains: map[string]*relayChain{}}
	for _, c := range chains {
		r.chains[c.info.HashString()] = c
	}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

// vectorChain serves the real beacon of a vector chain.
func vectorChain(v vector) *relayChain {
	return &relayChain{info: v.chain, beacons: map[uint64]beacon{v.round: v.beacon}}
}

// signerChain serves every due round of a test chain.
func signerChain(s *signer) *relayChain { return &relayChain{info: s.info, signer: s} }

// URL returns the relay's base URL.
func (r *testRelay) URL() string { return r.srv.URL }

// Paths returns the request paths so far.
func (r *testRelay) Paths() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.paths...)
}

// set runs f under the relay's lock, to switch faults.
func (r *testRelay) set(f func(r *testRelay)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

func (r *testRelay) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.paths = append(r.paths, req.URL.Path)
	status, tamper, infoEdit, body := r.status, r.tamper, r.infoEdit, r.body
	r.mu.Unlock()
	w.Header().Set("X-Request-Id", "req-"+strconv.Itoa(len(r.Paths())))
	if status != 0 {
		if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "2")
		}
		http.Error(w, http.StatusText(status), status)
		return
	}
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	c := r.chains[parts[0]]
	if c == nil || len(parts) < 2 {
		http.NotFound(w, req)
		return
	}
	if parts[1] == "info" && len(parts) == 2 {
		j := infoJSON{
			PublicKey:   hex.EncodeToString(c.info.PublicKey),
			Period:      int64(c.info.Period / time.Second),
			GenesisTime: c.info.GenesisTime,
			Hash:        c.info.HashString(),
			GroupHash:   hex.EncodeToString(c.info.GroupHash),
			SchemeID:    c.info.Scheme,
		}
		j.Metadata.BeaconID = c.info.BeaconID
		if infoEdit != nil {
			infoEdit(&j)
		}
		writeJSON(w, j)
		return
	}
	if parts[1] != "public" || len(parts) != 3 {
		http.NotFound(w, req)
		return
	}
	var round uint64
	if parts[2] == "latest" {
		round = c.info.RoundAt(r.now())
		if c.signer == nil {
			for k := range c.beacons {
				round = k
			}
		}
	} else {
		n, err := strconv.ParseUint(parts[2], 10, 64)
		if err != nil {
			http.Error(w, "bad round", http.StatusBadRequest)
			return
		}
		round = n
	}
	if body != nil {
		_, _ = w.Write(body)
		return
	}
	if c.info.RoundTime(round).After(r.now()) {
		http.Error(w, "Too Early", http.StatusTooEarly)
		return
	}
	var b beacon
	switch {
	case c.signer != nil && round > 0:
		b = c.signer.beacon(round)
	case c.beacons[round].sig != nil:
		b = c.beacons[round]
	default:
		http.NotFound(w, req)
		return
	}
	j := b.json()
	if tamper != nil {
		tamper(round, &j)
	}
	writeJSON(w, j)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// fixedClock returns a clock stopped at t.
func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// fastClock is a clock that runs speed times faster than real time from
// start, with the matching scaling of waits for Source.after.
type fastClock struct {
	start time.Time // chain time at creation
	real  time.Time
	speed time.Duration
}

func newFastClock(start time.Time, speed time.Duration) *fastClock {
	return &fastClock{start: start, real: time.Now(), speed: speed}
}

func (c *fastClock) Now() time.Time { return c.start.Add(time.Since(c.real) * c.speed) }

func (c *fastClock) After(d time.Duration) <-chan time.Time { return time.After(d/c.speed + 1) }

// mustNew is New for tests.
func mustNew(t testing.TB, chain ChainInfo, relays []string, opts ...Option) *Source {
	t.Helper()
	s, err := New(chain, relays, opts...)
	require.NoError(t, err)
	return s
}

// requirePaths checks that the relay saw exactly the paths want, with the
// chain hash abbreviated as "H".
func requirePaths(t testing.TB, r *testRelay, hash string, want ...string) {
	t.Helper()
	var got []string
	for _, p := range r.Paths() {
		got = append(got, strings.Replace(p, hash, "H", 1))
	}
	require.Equal(t, want, got, fmt.Sprintf("relay paths (H = %s)", hash))
}

func itoa(i int) string { return strconv.Itoa(i) }

func errorsIs(err, target error) bool { return errors.Is(err, target) }
