package draw

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// review2Forge returns the compact JSON of tr with the member name's value
// replaced by shown, and the true value restated under another member that
// JSON, and the spec of §6, treat as a different (unknown) member or as a
// repeated one.
func review2Forge(t *testing.T, tr *Transcript, name string, shown any, restate func(name, value string) string) string {
	t.Helper()
	js, err := json.Marshal(tr)
	require.NoError(t, err)
	var members map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(js, &members))
	real := string(members[name])
	require.NotEmpty(t, real, "member %q", name)
	fake, err := json.Marshal(shown)
	require.NoError(t, err)
	old := `"` + name + `":` + real
	require.Contains(t, string(js), old)
	forged := strings.Replace(string(js), old, `"`+name+`":`+string(fake), 1)
	return strings.TrimSuffix(forged, "}") + "," + restate(name, real) + "}"
}

// TestReview2TranscriptShowsOneResultVerifiesAnother: a transcript is
// tamper-evident (§6: a verifier refuses an unknown member, and the digest
// catches edits that do not recompute it). Here a member a reader of the file
// sees (outputs, event, inputs, entropy, time) is replaced, the digest is left
// alone, and the true value is restated at the end under "OUTPUTS" and the
// like (an unknown member: JSON names are case-sensitive) or as a second
// member of the same name. ParseTranscript and
// Verify must not accept such a file: what it shows is not what was drawn.
func TestReview2TranscriptShowsOneResultVerifiesAnother(t *testing.T) {
	f := newFake()
	got, tr, err := Pick(context.Background(), f, 6, 49, ForEvent("lotto-7"), clock())
	require.NoError(t, err)
	require.NoError(t, Verify(tr))
	fakeOutputs := []uint64{0, 1, 2, 3, 4, 5}
	require.NotEqual(t, tr.Outputs, fakeOutputs, "pick a shown result that differs from %v", got)

	upper := func(name, value string) string { return `"` + strings.ToUpper(name) + `":` + value }
	title := func(name, value string) string { return `"` + strings.ToUpper(name[:1]) + name[1:] + `":` + value }
	again := func(name, value string) string { return `"` + name + `":` + value }
	cases := map[string]string{
		"outputs, true ones as OUTPUTS": review2Forge(t, tr, "outputs", fakeOutputs, upper),
		"outputs, true ones as Outputs": review2Forge(t, tr, "outputs", fakeOutputs, title),
		"outputs, true ones repeated":   review2Forge(t, tr, "outputs", fakeOutputs, again),
		"event, true one as EVENT":      review2Forge(t, tr, "event", "lotto-8", upper),
		"event, true one repeated":      review2Forge(t, tr, "event", "lotto-8", again),
		"inputs, true ones as INPUTS":   review2Forge(t, tr, "inputs", Inputs{N: 50, K: 6}, upper),
		"entropy, true seed as ENTROPY": review2Forge(t, tr, "entropy", strings.Repeat("ab", SeedSize), upper),
		"time, true one as Time":        review2Forge(t, tr, "time", "2030-01-01T00:00:00Z", title),
	}
	for name, forged := range cases {
		back, err := ParseTranscript([]byte(forged))
		if err == nil {
			err = Verify(back)
		}
		assert.Error(t, err, "%s: the file shows another result, yet it verifies:\n%s", name, forged)
	}
}
