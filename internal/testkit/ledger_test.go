package testkit

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The ledger catches each fault it exists for: a test that passes with it
// would fail on a Provider that served a byte twice or mislabelled one.
func TestLedgerFindsEveryFault(t *testing.T) {
	jobs := map[string][]byte{"j": {1, 2, 3, 4, 5, 6, 7, 8}}
	l := NewLedger(func(source, id string) ([]byte, bool) {
		d, ok := jobs[id]
		return d, ok && source == "s"
	})
	for _, c := range []struct {
		name string
		sp   Span
		got  []byte
		want Fault
	}{
		{"fresh bytes", Span{"s", "j", 0, 2}, []byte{1, 2}, OK},
		{"unknown job", Span{"s", "k", 0, 2}, []byte{1, 2}, UnknownJob},
		{"unknown source", Span{"t", "j", 2, 2}, []byte{3, 4}, UnknownJob},
		{"past the job", Span{"s", "j", 7, 2}, []byte{8, 0}, OutOfRange},
		{"empty span", Span{"s", "j", 2, 0}, []byte{}, OutOfRange},
		{"other bytes", Span{"s", "j", 2, 2}, []byte{3, 9}, Differs},
		{"a byte again", Span{"s", "j", 1, 2}, []byte{2, 3}, Twice},
		{"a derivation's key, not compared", Span{"s", "j", 4, 4}, nil, OK},
		{"a key again", Span{"s", "j", 6, 1}, nil, Twice},
	} {
		f, msg := l.Take(c.sp, c.got)
		assert.Equal(t, c.want, f, c.name)
		assert.Equal(t, c.want == OK, msg == "", "%s: %q", c.name, msg)
	}
}
