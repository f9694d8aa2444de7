package httpsource_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/internal/evidence"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The test vector of docs/protocol.md ("Signature, v2"): a fixed key seed and
// fixed fields give these exact message bytes and this signature. The vector
// was also computed by an implementation written from the document alone.
func TestSignatureV2Vector(t *testing.T) {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i) // 00 01 … 1f
	}
	nonce := make([]byte, 16)
	for i := range nonce {
		nonce[i] = byte(0xa0 + i) // a0 a1 … af
	}
	data := make([]byte, 32)
	for i := range data {
		data[i] = byte(0x20 + i) // 20 21 … 3f
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	assert.Equal(t, "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8", hex.EncodeToString(pub))

	msg := httpsource.SignedMessageV2("job-0001", nonce, 32, "2026-01-02T03:04:05Z", data)
	assert.Equal(t, "70726f76656e72616e642f656e74726f70792f7632"+"00"+
		"00000008"+"6a6f622d30303031"+
		"00000010"+"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"+
		"00000020"+
		"00000014"+"323032362d30312d30325430333a30343a30355a"+
		"72dbb7336c76780023f83da4c355f2eeea85733b13d3477697917790c1229084", hex.EncodeToString(msg))

	sig := ed25519.Sign(priv, msg)
	const want = "ba0d4f2ee233c44fdc7a9541b6b53cb81e16cc52f91a055fb3c14e50e64d8427e9365e8ab2604abfa7e156cefa383810916963e22d10460ae6aa7363d3568b04"
	assert.Equal(t, want, hex.EncodeToString(sig))
	assert.True(t, httpsource.VerifySignatureV2(pub, "job-0001", nonce, 32, "2026-01-02T03:04:05Z", data, sig))

	// Every signed field counts.
	other := append([]byte(nil), nonce...)
	other[0] ^= 1
	assert.False(t, httpsource.VerifySignatureV2(pub, "job-0002", nonce, 32, "2026-01-02T03:04:05Z", data, sig), "job_id")
	assert.False(t, httpsource.VerifySignatureV2(pub, "job-0001", other, 32, "2026-01-02T03:04:05Z", data, sig), "nonce")
	assert.False(t, httpsource.VerifySignatureV2(pub, "job-0001", nonce, 31, "2026-01-02T03:04:05Z", data, sig), "size")
	assert.False(t, httpsource.VerifySignatureV2(pub, "job-0001", nonce, 32, "2026-01-02T03:04:06Z", data, sig), "timestamp")
	assert.False(t, httpsource.VerifySignatureV2(pub, "job-0001", nonce, 32, "2026-01-02T03:04:05Z", data[1:], sig), "data")
	assert.False(t, httpsource.VerifySignatureV2(pub, "job-0001", nonce, -1, "2026-01-02T03:04:05Z", data, sig), "negative size")
	assert.False(t, httpsource.VerifySignature(pub, "job-0001", data, sig), "a v2 signature is no v1 signature")
}

// Length prefixes keep fields apart: moving bytes from the job ID into the
// nonce gives another message.
func TestSignedMessageV2FieldsCannotShift(t *testing.T) {
	a := httpsource.SignedMessageV2("job-1\x00", []byte("nonce-nonce-nonce"), 8, "t", nil)
	b := httpsource.SignedMessageV2("job-1", []byte("\x00nonce-nonce-nonce"), 8, "t", nil)
	assert.NotEqual(t, a, b)
}

func TestNonceEncoding(t *testing.T) {
	n := make([]byte, httpsource.MinNonceSize)
	n[3] = 0xab
	s := httpsource.EncodeNonce(n)
	assert.Equal(t, "000000ab000000000000000000000000", s)
	back, err := httpsource.DecodeNonce(s)
	require.NoError(t, err)
	assert.Equal(t, n, back)
	for _, bad := range []string{"", "00", strings.ToUpper(s), s + "0", s[:30], "zz" + s[2:], strings.Repeat("00", httpsource.MaxNonceSize+1)} {
		_, err := httpsource.DecodeNonce(bad)
		assert.Error(t, err, "nonce %q", bad)
	}
	_, err = httpsource.DecodeNonce(strings.Repeat("00", httpsource.MaxNonceSize))
	assert.NoError(t, err)

	a, err := httpsource.NewNonce()
	require.NoError(t, err)
	b, err := httpsource.NewNonce()
	require.NoError(t, err)
	assert.Len(t, a, httpsource.MinNonceSize)
	assert.NotEqual(t, a, b)
}

// Every fetch sends a nonce of its own, and a job made for one request is
// refused as the answer to another: a replay by anyone in the middle gives
// an error wrapping ErrBadProof and no bytes (contract point 4).
func TestReplayedJobIsRefused(t *testing.T) {
	var mu sync.Mutex
	var recorded string // the first answer, served again to every later request
	f, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if recorded == "" {
			recorded = f.completedJSON("job-once", pattern(32))
		}
		fmt.Fprint(w, recorded)
	})
	s := newSource(t, srv, httpsource.WithPublicKey(f.pub))
	b, err := s.Fetch(context.Background(), 32)
	require.NoError(t, err)
	assert.True(t, b.Verifiable)

	for i := 0; i < 3; i++ {
		b, err = s.Fetch(context.Background(), 32)
		require.ErrorIs(t, err, httpsource.ErrBadProof, "replay %d", i)
		assert.Contains(t, err.Error(), "nonce")
		assert.Nil(t, b.Data)
		assert.NotEqual(t, entropy.Permanent, entropy.Classify(err), "a replay is the answer's fault, not the request's")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[string]bool{}
	for _, r := range f.requests {
		n := r.URL.Query().Get(httpsource.NonceParam)
		_, err := httpsource.DecodeNonce(n)
		require.NoError(t, err, "request %s carries a nonce", r.URL)
		assert.False(t, seen[n], "nonce %s sent twice", n)
		seen[n] = true
	}
	assert.Len(t, seen, 4)
}

// A queued job carries the nonce of the request that queued it: the poll's
// answer is held to it.
func TestQueuedJobCarriesTheNonce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nonce func(sent string) string // the nonce the completed job states
		want  error
	}{
		{"same nonce", func(sent string) string { return sent }, nil},
		{"other nonce", func(string) string { return strings.Repeat("cd", httpsource.MinNonceSize) }, httpsource.ErrBadProof},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v1/entropy" {
					w.WriteHeader(http.StatusAccepted)
					fmt.Fprint(w, `{"job_id":"job-q","status":"queued"}`)
					return
				}
				stated := tc.nonce(f.lastNonce())
				nonce, _ := hex.DecodeString(stated)
				sig := ed25519.Sign(f.priv, httpsource.SignedMessageV2("job-q", nonce, 16, fakeStamp, pattern(16)))
				fmt.Fprintf(w, `{"job_id":"job-q","status":"completed","entropy":%q,"nonce":%q,"timestamp":%q,"signature":%q}`,
					base64.StdEncoding.EncodeToString(pattern(16)), stated, fakeStamp, base64.StdEncoding.EncodeToString(sig))
			})
			s := newSource(t, srv, httpsource.WithPublicKey(f.pub), httpsource.WithPollInterval(time.Millisecond, 2*time.Millisecond))
			b, err := s.Fetch(context.Background(), 16)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
				assert.Nil(t, b.Data)
				return
			}
			require.NoError(t, err)
			assert.True(t, b.Verifiable)
			assert.Equal(t, f.lastNonce(), hex.EncodeToString(b.Evidence.Nonce))
		})
	}
}

// The timestamp must lie within the tolerance of the request, by the
// source's clock (WithClock): a job stamped long before the request, or
// after its answer, is refused even with a good signature.
func TestTimestampTolerance(t *testing.T) {
	stamp := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	f, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		nonce, _ := hex.DecodeString(f.lastNonce())
		ts := stamp.Format(time.RFC3339)
		sig := ed25519.Sign(f.priv, httpsource.SignedMessageV2("job-t", nonce, 8, ts, pattern(8)))
		fmt.Fprintf(w, `{"job_id":"job-t","status":"completed","entropy":%q,"nonce":%q,"timestamp":%q,"signature":%q}`,
			base64.StdEncoding.EncodeToString(pattern(8)), f.lastNonce(), ts, base64.StdEncoding.EncodeToString(sig))
	})
	for _, tc := range []struct {
		now       time.Time
		tolerance time.Duration
		ok        bool
	}{
		{stamp, 0, true},
		{stamp.Add(httpsource.DefaultTimestampTolerance), 0, true},
		{stamp.Add(httpsource.DefaultTimestampTolerance + time.Second), 0, false}, // stamped long before the request
		{stamp.Add(-httpsource.DefaultTimestampTolerance), 0, true},
		{stamp.Add(-httpsource.DefaultTimestampTolerance - time.Second), 0, false}, // stamped in the future
		{stamp.Add(time.Hour), 2 * time.Hour, true},
		{stamp.Add(time.Hour), 30 * time.Minute, false},
	} {
		opts := []httpsource.Option{httpsource.WithPublicKey(f.pub), httpsource.WithClock(entropy.NowFunc(func() time.Time { return tc.now }))}
		if tc.tolerance > 0 {
			opts = append(opts, httpsource.WithTimestampTolerance(tc.tolerance))
		}
		s := newSource(t, srv, opts...)
		b, err := s.Fetch(context.Background(), 8)
		if tc.ok {
			require.NoError(t, err, "now %v tolerance %v", tc.now, tc.tolerance)
			assert.True(t, b.Verifiable)
		} else {
			require.ErrorIs(t, err, httpsource.ErrBadProof, "now %v tolerance %v", tc.now, tc.tolerance)
			assert.Contains(t, err.Error(), "timestamp")
		}
	}
	_, err := httpsource.New(srv.URL, httpsource.WithTimestampTolerance(0))
	assert.Error(t, err)
	_, err = httpsource.New(srv.URL, httpsource.WithClock(nil))
	assert.Error(t, err)
}

// FetchNonce sends the nonce it is given, and refuses one of a size outside
// the protocol's bounds before any request.
func TestFetchNonceSendsTheGivenNonce(t *testing.T) {
	f, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, f.completedJSON("job-n", pattern(16)))
	})
	s := newSource(t, srv, httpsource.WithPublicKey(f.pub))
	nonce := []byte("sixteen-byte-non")
	b, err := s.FetchNonce(context.Background(), 16, nonce)
	require.NoError(t, err)
	assert.Equal(t, nonce, b.Evidence.Nonce)
	assert.Equal(t, hex.EncodeToString(nonce), f.lastNonce())
	assert.Equal(t, evidence.SchemeReferenceV2, b.Evidence.Scheme)
	assert.Nil(t, b.Evidence.Data, "a block's evidence leaves the bytes to the block")

	for _, bad := range [][]byte{nil, make([]byte, httpsource.MinNonceSize-1), make([]byte, httpsource.MaxNonceSize+1)} {
		_, err := s.FetchNonce(context.Background(), 16, bad)
		require.Error(t, err)
		assert.Equal(t, entropy.Permanent, entropy.Classify(err))
	}
	assert.Equal(t, 1, f.count("/v1/entropy"), "a bad nonce sends no request")
	var _ interface {
		FetchNonce(ctx context.Context, n int, nonce []byte) (entropy.Block, error)
	} = s
}

// Verifiable only with a checked signature: no key → not verifiable; a
// fetched key → verifiable; the fetched key is asked for once.
func TestVerifiableOnlyWithCheckedSignature(t *testing.T) {
	data := []byte("0123456789abcdef")
	rs, srv := newOldFake(t, func(rs *fakeService, w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/public-key":
			fmt.Fprintf(w, `{"algorithm":"ed25519","public_key":%q}`, base64.StdEncoding.EncodeToString(rs.pub))
		default:
			fmt.Fprint(w, rs.completedJSON("job-v", data))
		}
	})
	plain := newOldSource(t, srv)
	blk, err := plain.Fetch(context.Background(), 16)
	require.NoError(t, err)
	assert.False(t, blk.Verifiable, "no key, no check, not verifiable")

	fetched := newOldSource(t, srv, httpsource.WithFetchPublicKey())
	for range 3 {
		blk, err = fetched.Fetch(context.Background(), 16)
		require.NoError(t, err)
		assert.True(t, blk.Verifiable)
		assert.Equal(t, data, blk.Data)
		assert.Equal(t, "job-v", blk.JobID)
	}
	assert.Len(t, rs.arrivals("/v1/public-key"), 1)
	for _, a := range rs.auths() {
		assert.Equal(t, "Bearer "+testKey, a)
	}

	other, _, _ := ed25519.GenerateKey(nil)
	wrong := newOldSource(t, srv, httpsource.WithPublicKey(other))
	blk, err = wrong.Fetch(context.Background(), 16)
	require.ErrorIs(t, err, httpsource.ErrBadProof)
	assert.Nil(t, blk.Data)
}

// Bad answers of every kind on the 200 path and on the polled path: an error,
// no bytes, and never a Verifiable block.
func TestBadAnswersReturnNoBytes(t *testing.T) {
	good := make([]byte, 16)
	for i := range good {
		good[i] = byte(i + 1)
	}
	signer, _ := newOldFake(t, func(*fakeService, http.ResponseWriter, *http.Request) {})
	goodB64 := base64.StdEncoding.EncodeToString(good)
	sig := signer.sign("job-x", good)
	otherSig := signer.sign("job-y", good)
	short := base64.StdEncoding.EncodeToString(good[:15])
	shortSig := signer.sign("job-x", good[:15])
	bodies := map[string]struct {
		body string
		want error
	}{
		"bad signature":        {fmt.Sprintf(`{"job_id":"job-x","status":"completed","entropy":%q,"timestamp":"2024-05-01T12:00:00Z","signature":%q}`, goodB64, otherSig), httpsource.ErrBadProof},
		"missing signature":    {fmt.Sprintf(`{"job_id":"job-x","status":"completed","entropy":%q,"timestamp":"2024-05-01T12:00:00Z"}`, goodB64), nil},
		"short, well signed":   {fmt.Sprintf(`{"job_id":"job-x","status":"completed","entropy":%q,"timestamp":"2024-05-01T12:00:00Z","signature":%q}`, short, shortSig), httpsource.ErrMalformed},
		"entropy not base64":   {fmt.Sprintf(`{"job_id":"job-x","status":"completed","entropy":"!!notb64!!","timestamp":"2024-05-01T12:00:00Z","signature":%q}`, sig), httpsource.ErrMalformed},
		"unpadded base64":      {fmt.Sprintf(`{"job_id":"job-x","status":"completed","entropy":%q,"timestamp":"2024-05-01T12:00:00Z","signature":%q}`, strings.TrimRight(goodB64, "="), sig), httpsource.ErrMalformed},
		"url base64 signature": {fmt.Sprintf(`{"job_id":"job-x","status":"completed","entropy":%q,"timestamp":"2024-05-01T12:00:00Z","signature":"%s"}`, goodB64, strings.NewReplacer("+", "-", "/", "_").Replace(sig)+"-_"), nil},
		"truncated json":       {fmt.Sprintf(`{"job_id":"job-x","status":"completed","entropy":%q,"timestamp":"2024-05-01T12:00:00Z","signature":%q`, goodB64, sig), httpsource.ErrMalformed},
		"trailing garbage":     {fmt.Sprintf(`{"job_id":"job-x","status":"completed","entropy":%q,"timestamp":"2024-05-01T12:00:00Z","signature":%q}}`, goodB64, sig), httpsource.ErrMalformed},
		"json array":           {`[1,2,3]`, httpsource.ErrMalformed},
		"empty body":           {``, httpsource.ErrMalformed},
		"bad timestamp":        {fmt.Sprintf(`{"job_id":"job-x","status":"completed","entropy":%q,"timestamp":"yesterday","signature":%q}`, goodB64, sig), httpsource.ErrMalformed},
		"unknown status":       {`{"job_id":"job-x","status":"done"}`, httpsource.ErrMalformed},
		"no job id":            {fmt.Sprintf(`{"status":"completed","entropy":%q,"timestamp":"2024-05-01T12:00:00Z","signature":%q}`, goodB64, sig), httpsource.ErrMalformed},
	}
	for name, tc := range bodies {
		for _, via := range []string{"direct", "polled"} {
			t.Run(name+"/"+via, func(t *testing.T) {
				_, srv := newOldFake(t, func(rs *fakeService, w http.ResponseWriter, r *http.Request) {
					if via == "polled" && r.URL.Path == "/v1/entropy" {
						w.WriteHeader(http.StatusAccepted)
						fmt.Fprint(w, `{"job_id":"job-x","status":"queued"}`)
						return
					}
					fmt.Fprint(w, tc.body)
				})
				s := newOldSource(t, srv, httpsource.WithPublicKey(signer.pub),
					httpsource.WithPollInterval(time.Millisecond, time.Millisecond))
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				blk, err := s.Fetch(ctx, 16)
				require.Error(t, err)
				assert.Nil(t, blk.Data)
				assert.False(t, blk.Verifiable)
				if tc.want != nil {
					assert.ErrorIs(t, err, tc.want)
				}
				assert.NotEqual(t, entropy.Permanent, entropy.Classify(err), "a bad answer produced nothing: transient")
			})
		}
	}
}
