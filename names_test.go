package entropy

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// forgingNames are names that could forge output printed as is: line
// breaks of every kind, bidi overrides, other invisible format characters,
// terminal escapes, and the path names "." and "..".
var forgingNames = []string{
	"job\nentropy OK: matches the signed jobs",
	"job\r\nx", "job\rx", "job\x1b[2Jx", "job\x00", "job\x7f", "job\u0085x",
	"job\u2028x", "job\u2029x",
	"job\u202ex", "job\u202ax", "job\u2066x", "job\u2069x", "job\u200ex", "job\u200fx", "job\u061cx",
	"job\u200bx", "job\ufeffx",
	// Printable, and showing nothing: "raffle" and "raffle\ufe0f" would
	// print alike, two events of one look.
	"job\u034fx", "job\ufe0fx", "job\u3164x", "job\u115fx", "job\uffa0x", "job\u17b4x", "job\u180bx", "job\U000e0100x",
	"job\tx", "job\u00a0x",
	".", "..",
	"job-\xff",
}

// TestNameCheckRefusesForgingNames: a name that could make printed output
// say something else (a second line, reversed text, a hidden character, a
// path step) is refused; printable names in any script are accepted.
func TestNameCheckRefusesForgingNames(t *testing.T) {
	for _, name := range forgingNames {
		assert.Error(t, checkName(name), "%q", name)
	}
	assert.Error(t, checkName(""))
	for _, name := range []string{
		"job-7", "0d4c1b2a-9f8e", "drand/quicknet", "round 7", "März-2026", "抽選-第1回", "lotto #12 (final)",
		"...", ".hidden", "a.b", strings.Repeat("n", 2000),
	} {
		assert.NoError(t, checkName(name), "%q", name)
	}
}

// TestLabelStringIsOneLineWhateverTheNames: a label's one-line summary stays
// one line, and shows no bidi override or other control, whatever its
// source names and job IDs hold; plain names print as they are.
func TestLabelStringIsOneLineWhateverTheNames(t *testing.T) {
	for _, name := range forgingNames {
		l := Label{Verifiable: true, Spans: []Span{{Source: name, JobID: name, Offset: 0, Length: 8}}}
		s := l.String()
		for _, r := range s {
			require.Truef(t, r == ' ' || (r > ' ' && r != 0x7f && !strings.ContainsRune("\u0085\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u200b\ufeff\u00a0", r)),
				"label of %q prints %q", name, s)
		}
	}
	l := Label{Spans: []Span{{Source: FallbackSource, Length: 8}}, Reason: errorString("source down\nentropy OK")}
	assert.NotContains(t, l.String(), "\n")
	plain := Label{Verifiable: true, Spans: []Span{{Source: "quantropy", JobID: "j1", Offset: 4, Length: 28}}}
	assert.Equal(t, "verifiable quantropy j1[4:32]", plain.String())
}

type errorString string

func (e errorString) Error() string { return string(e) }
