package retryafter

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestParseTooBigIsLongest: any delay too big for a time.Duration, in any
// spelling, is the longest duration, never 0 (which would be no hold).
func TestParseTooBigIsLongest(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, v := range []string{
		strings.Repeat("9", 19), strings.Repeat("9", 30), strings.Repeat("9", 400),
		"1e400", "1E30", "9223372037", "+Inf", " 1e400 ",
	} {
		assert.Equal(t, time.Duration(math.MaxInt64), Parse(v, now), "Retry-After %q", v)
	}
}

// TestParseValues: ordinary delays, dates and garbage.
func TestParseValues(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":        0,
		"0":       0,
		"-3":      0,
		"-1e400":  0,
		"1e-400":  0,
		"NaN":     0,
		"soon":    0,
		"7":       7 * time.Second,
		"1.5":     1500 * time.Millisecond,
		" 2 ":     2 * time.Second,
		"9223372": 9223372 * time.Second,
		now.Add(10 * time.Second).Format(http.TimeFormat): 10 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		assert.Equal(t, want, Parse(v, now), "Retry-After %q", v)
	}
}
