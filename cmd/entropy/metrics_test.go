package main

import (
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy/internal/testkit"
)

// metricsURL waits for the "metrics on URL" line of a command's stderr.
func metricsURL(t *testing.T, errOut *testkit.SyncBuffer) string {
	t.Helper()
	re := regexp.MustCompile(`metrics on (http://\S+/metrics)`)
	var url string
	require.Eventually(t, func() bool {
		if m := re.FindStringSubmatch(errOut.String()); m != nil {
			url = m[1]
			return true
		}
		return false
	}, 10*time.Second, 5*time.Millisecond)
	return url
}

// scrape returns the body of GET url.
func scrape(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(b)
}

func TestReadServesMetrics(t *testing.T) {
	clearEnv(t)
	cmd := start(t, "read", "-n", "16", "--policy", "defer", "--metrics", "127.0.0.1:0")
	url := metricsURL(t, &cmd.errOut)
	require.Eventually(t, func() bool { return len(cmd.out.String()) == 33 }, 10*time.Second, 5*time.Millisecond, "16 bytes in hex and a newline")
	body := scrape(t, url)
	assert.Regexp(t, `entropy_reads_total\{[^}]*entropy_read_class="verifiable"[^}]*\} 1\n`, body)
	assert.Regexp(t, `entropy_served_bytes_total\{[^}]*entropy_read_class="verifiable"[^}]*\} 16\n`, body)
	assert.Regexp(t, `entropy_source_breaker_state\{[^}]*entropy_breaker_state="closed"[^}]*entropy_source="simulator"[^}]*\} 1\n`, body)
	assert.Contains(t, body, "entropy_pool_fill_bytes")

	assert.Equal(t, 0, cmd.stop(t))
}

func TestSimServesMetrics(t *testing.T) {
	clearEnv(t)
	cmd := start(t, "sim", "--addr", "127.0.0.1:0", "--seed", "4", "--metrics", "127.0.0.1:0")
	url := metricsURL(t, &cmd.errOut)
	env := cmd.simEnv(t)
	t.Setenv("ENTROPY_URL", env["ENTROPY_URL"])
	t.Setenv("ENTROPY_API_KEY", env["ENTROPY_API_KEY"])
	t.Setenv("ENTROPY_PUBLIC_KEY", env["ENTROPY_PUBLIC_KEY"])
	code, _, rerr := runCLI(t, "read", "-n", "16")
	require.Equal(t, 0, code, rerr)

	body := scrape(t, url)
	assert.Regexp(t, `entropy_sim_requests_total\{[^}]*entropy_sim_fault="none"[^}]*http_response_status_code="200"[^}]*http_route="/v1/entropy(/batch)?"[^}]*\} [1-9]`, body)
	assert.Equal(t, 0, cmd.stop(t))
}

func TestMetricsBadAddressFails(t *testing.T) {
	clearEnv(t)
	code, _, errOut := runCLI(t, "read", "-n", "4", "--metrics", "256.0.0.1:1")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "--metrics")
}

// A --metrics that is no host:port is a bad command line (exit 2), for read
// and for sim; only an address that cannot be listened on is a failure.
func TestMetricsAddressWithoutPortIsUsageError(t *testing.T) {
	clearEnv(t)
	assertUsageError(t, []string{"read", "-n", "4", "--metrics", "localhost"}, "--metrics", "host:port")
	assertUsageError(t, []string{"sim", "--addr", "127.0.0.1:0", "--metrics", "nonsense"}, "--metrics", "host:port")
}
