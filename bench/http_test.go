package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"testing"

	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/sim"
	"github.com/stretchr/testify/require"
)

// httpSizes are the request sizes of the end-to-end benchmarks, up to the
// protocol's largest (65536).
var httpSizes = []int{32, 4096, 65536}

const benchKey = "bench-key"

// newSim starts a simulator on loopback with an API key of (practically)
// unlimited balance, stopped when the benchmark ends.
func newSim(tb testing.TB) *sim.Server {
	tb.Helper()
	s := sim.New(sim.WithKey(benchKey, 1<<62))
	_, err := s.Start()
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// The answer forms the end-to-end benchmarks compare: the binary form
// (httpsource's default) and JSON (httpsource.WithJSONOnly).
const (
	formBinary = "binary"
	formJSON   = "json"
)

// accept is the Accept header httpsource sends for a form.
func accept(form string) string {
	if form == formJSON {
		return httpsource.MediaTypeJSON
	}
	return httpsource.AcceptBinary
}

// newHTTPSource returns a source that checks every signature against the
// simulator's public key, asking for answers in form.
func newHTTPSource(tb testing.TB, s *sim.Server, form string) *httpsource.Source {
	tb.Helper()
	// Kept-alive connections, as the raw path has: the comparison is of the
	// protocol's work, not of a TCP handshake per request.
	opts := []httpsource.Option{httpsource.WithAPIKey(benchKey), httpsource.WithPublicKey(s.PublicKey()), httpsource.WithKeepAlive()}
	if form == formJSON {
		opts = append(opts, httpsource.WithJSONOnly())
	}
	src, err := httpsource.New(s.URL(), opts...)
	require.NoError(tb, err)
	return src
}

// rawGet is the simulator's raw speed: the request httpsource sends for n
// bytes in the same form (GET /v1/entropy?size=n, same Accept header), the
// whole body read, with no decoding and no signature check.
type rawGet struct {
	client *http.Client
	url    string
	accept string
}

func newRawGet(tb testing.TB, s *sim.Server, n int, form string) *rawGet {
	tr := &http.Transport{}
	tb.Cleanup(tr.CloseIdleConnections)
	return &rawGet{
		client: &http.Client{Transport: tr},
		url:    fmt.Sprintf("%s%s?size=%d", s.URL(), httpsource.EntropyPath, n),
		accept: accept(form),
	}
}

// get sends one request and returns the body's length.
func (r *rawGet) get(ctx context.Context) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", r.accept)
	req.Header.Set("Authorization", "Bearer "+benchKey)
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return n, err
}

// BenchmarkHTTP is the end-to-end path on loopback: "verifiable" is
// httpsource.Source.Fetch (parse, Ed25519 check), "raw" the plain GET of the
// same request, reading the same body. Both ask for the binary form, which
// httpsource does by default; the "-json" pair asks for JSON (base64 entropy)
// instead. MB/s counts entropy bytes in all of them.
func BenchmarkHTTP(b *testing.B) {
	for _, form := range []string{formBinary, formJSON} {
		suffix := ""
		if form == formJSON {
			suffix = "-json"
		}
		for _, n := range httpSizes {
			b.Run("verifiable"+suffix+"/"+sizeName(n), func(b *testing.B) {
				s := newSim(b)
				src := newHTTPSource(b, s, form)
				ctx := context.Background()
				b.SetBytes(int64(n))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					blk, err := src.Fetch(ctx, n)
					if err != nil || !blk.Verifiable {
						b.Fatal(err, blk.Verifiable)
					}
				}
			})
			b.Run("raw"+suffix+"/"+sizeName(n), func(b *testing.B) {
				s := newSim(b)
				r := newRawGet(b, s, n, form)
				ctx := context.Background()
				b.SetBytes(int64(n))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if _, err := r.get(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestHTTPPaths checks what BenchmarkHTTP compares: both paths get an answer
// for the same request size in the same form, and the verifiable one checks
// out.
func TestHTTPPaths(t *testing.T) {
	s := newSim(t)
	for form, bodyLen := range map[string]func(int64) bool{
		formBinary: func(n int64) bool { return n == 4096 },
		formJSON:   func(n int64) bool { return n > 4096*4/3 },
	} {
		blk, err := newHTTPSource(t, s, form).Fetch(context.Background(), 4096)
		require.NoError(t, err, form)
		require.True(t, blk.Verifiable, form)
		require.Len(t, blk.Data, 4096, form)
		n, err := newRawGet(t, s, 4096, form).get(context.Background())
		require.NoError(t, err, form)
		require.True(t, bodyLen(n), "%s: a body of %d bytes for 4096 bytes of entropy", form, n)
	}
}

// TestHTTPPathsReuseConnections checks that the comparison is fair both
// ways: after the first request, each path sends every request on a kept-alive
// connection, so neither pays for a TCP connection per request.
func TestHTTPPathsReuseConnections(t *testing.T) {
	s := newSim(t)
	var fresh, reused atomic.Int64
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if info.Reused {
				reused.Add(1)
			} else {
				fresh.Add(1)
			}
		},
	})
	const requests = 20
	src := newHTTPSource(t, s, formBinary)
	for range requests {
		blk, err := src.Fetch(ctx, 4096)
		require.NoError(t, err)
		require.True(t, blk.Verifiable)
	}
	require.Equal(t, int64(1), fresh.Load(), "verifiable path: connections opened")
	require.Equal(t, int64(requests-1), reused.Load(), "verifiable path: requests on a kept-alive connection")

	fresh.Store(0)
	reused.Store(0)
	raw := newRawGet(t, s, 4096, formBinary)
	for range requests {
		_, err := raw.get(ctx)
		require.NoError(t, err)
	}
	require.Equal(t, int64(1), fresh.Load(), "raw path: connections opened")
	require.Equal(t, int64(requests-1), reused.Load(), "raw path: requests on a kept-alive connection")
}
