package httpsource

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// spellings of key that a server or an error message may hold.
func spellings(key string) []string {
	j, _ := json.Marshal(key)
	var u, pct strings.Builder
	for _, r := range key {
		fmt.Fprintf(&u, "\\u%04x", r)
	}
	for i := 0; i < len(key); i++ {
		fmt.Fprintf(&pct, "%%%02X", key[i])
	}
	return []string{
		url.QueryEscape(key),
		pct.String(),
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

// decodedRuns returns what every run of base64 characters of text decodes
// to, in either alphabet, wherever its 4-character groups start.
func decodedRuns(text string) []byte {
	var out []byte
	isB64 := func(r rune) bool {
		return r < 0x80 && (r == '+' || r == '/' || r == '-' || r == '_' || r == '=' ||
			'0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
	}
	for _, run := range strings.FieldsFunc(text, func(r rune) bool { return !isB64(r) }) {
		run = strings.TrimRight(run, "=")
		for skip := 0; skip < 4 && skip < len(run); skip++ {
			for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
				part := run[skip:]
				part = part[:len(part)/4*4]
				d, _ := enc.DecodeString(strings.Map(func(r rune) rune {
					if enc == base64.RawStdEncoding && (r == '-' || r == '_') || enc == base64.RawURLEncoding && (r == '+' || r == '/') {
						return 'A'
					}
					return r
				}, part))
				out = append(append(out, d...), 0)
			}
		}
	}
	return out
}

// A service may echo the key in base64 (an "Authorization: Basic" header, a
// dump of the request): wherever the encoding started before the key, in
// either alphabet, no more than a byte at either end of it is left to read.
func TestRedactKeyInBase64(t *testing.T) {
	for _, key := range []string{"sk-live/5f0c+Ab==", "sk-test-4f1d2c3b5a69788796a5b4c3d2e1f0", "ключ-é-✓"} {
		for _, prefix := range []string{"", "Bearer ", "x", "xy", ":"} {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding} {
				sp := enc.EncodeToString([]byte(prefix + key))
				in := []byte(`{"message":"echo ` + sp + `","again":"` + sp + `."}`)
				orig := bytes.Clone(in)
				out, found := redactKey(in, key)
				assert.True(t, found, "%q after %q in %q not found", key, prefix, sp)
				assert.Equal(t, orig, in, "redactKey changed its input")
				assert.NotContains(t, string(decodedRuns(string(out))), key[1:len(key)-1], "key readable in %q", out)
			}
		}
	}
}

// A cut that ends inside the base64 of the key drops what it left of it.
func TestTrimKeyStartDropsPartialBase64Keys(t *testing.T) {
	key := "sk-test-4f1d2c3b5a69788796a5b4c3d2e1f0"
	for _, prefix := range []string{"", "Bearer ", "x", "xy"} {
		sp := base64.StdEncoding.EncodeToString([]byte(prefix + key))
		for cut := len(sp) / 3; cut < len(sp)*3/4; cut++ {
			got := string(trimKeyStart([]byte("echo "+sp[:cut]), key))
			require.True(t, strings.HasPrefix("echo "+sp[:cut], got), "trim added bytes: %q", got)
			assert.Less(t, len(got), len("echo ")+(len(prefix)*4+2)/3+1, "cut at %d after %q left %q", cut, prefix, got)
		}
	}
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
