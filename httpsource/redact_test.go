package httpsource

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// spellings of key that a server or an error message may hold.
func spellings(key string) []string {
	j, _ := json.Marshal(key)
	var u strings.Builder
	for _, r := range key {
		fmt.Fprintf(&u, "\\u%04x", r)
	}
	return []string{
		key,
		strings.Trim(string(j), `"`),
		strings.Trim(strconv.Quote(key), `"`),
		strings.Trim(strconv.QuoteToASCII(key), `"`),
		strings.ReplaceAll(key, "/", `\/`),
		u.String(),
	}
}

func TestRedactKeyEverySpelling(t *testing.T) {
	for _, key := range []string{"sk-live/5f0c+Ab==", `k"e\y`, "ключ-é-✓"} {
		for _, sp := range spellings(key) {
			in := []byte(`{"details":{"authorization":"Bearer ` + sp + `"}} and again ` + sp + ".")
			orig := bytes.Clone(in)
			out, found := redactKey(in, key)
			assert.True(t, found, "%q in spelling %q not found", key, sp)
			assert.Equal(t, orig, in, "redactKey changed its input")
			assert.NotContains(t, string(out), sp, "spelling %q left in %q", sp, out)
			assert.Equal(t, 2, strings.Count(string(out), "[REDACTED]"), "%q", out)
		}
	}
	out, found := redactKey([]byte("nothing here"), "sk-live")
	assert.False(t, found)
	assert.Equal(t, "nothing here", string(out))
}

func TestTrimKeyStartDropsPartialKeys(t *testing.T) {
	key := "sk-live/5f0c"
	for _, sp := range spellings(key) {
		for cut := 1; cut < len(sp); cut++ {
			text := []byte("request " + sp[:cut])
			got := string(trimKeyStart(text, key))
			require.True(t, strings.HasPrefix("request "+sp[:cut], got), "trim added bytes: %q", got)
			assert.False(t, strings.HasSuffix(got, sp[:cut]), "partial key %q left after a cut at %d: %q", sp[:cut], cut, got)
		}
	}
}

func FuzzRedactKey(f *testing.F) {
	f.Add([]byte(`{"m":"sk-live\/5f0c"}`), "sk-live/5f0c")
	f.Add([]byte(`\u0073k`), "sk")
	f.Fuzz(func(t *testing.T, text []byte, key string) {
		if key == "" || len(key) > 64 || strings.ContainsRune(key, 0) {
			return
		}
		orig := bytes.Clone(text)
		out, _ := redactKey(text, key)
		if !bytes.Equal(orig, text) {
			t.Fatal("redactKey changed its input")
		}
		// The marker itself is not a leak: a key like "]k" would otherwise
		// be "found" in "[REDACTED]k".
		rest := bytes.ReplaceAll(out, []byte("[REDACTED]"), []byte{0})
		if bytes.Contains(rest, []byte(key)) {
			t.Fatalf("key %q left in %q", key, out)
		}
	})
}
