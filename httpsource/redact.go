package httpsource

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"slices"
	"unicode/utf16"
	"unicode/utf8"
)

// A service may echo the API key in a JSON body, and an error may quote
// server text with %q: the key then shows not only as itself but with any of
// its characters written as an escape sequence ("\/" for '/', "\u0073" for
// 's', "\"" for '"', …), in any mix. The helpers below find the key in every
// such spelling, so that redaction does not depend on how the text was
// encoded. A service that echoes a request may also percent-encode the key
// (as in a URL: "%2F" for '/'), any byte of it, or give it in base64 (as in
// an echoed "Authorization: Basic" header or a dump of the request): those
// spellings are found too (see base64Forms).

// maxSpellingPerByte bounds the bytes that one byte of the key takes in any
// spelling: "\U000000XX" spells an ASCII byte in 10.
const maxSpellingPerByte = 10

// keyMatch is what keyFinder.match found at the start of a text.
type keyMatch int

const (
	noKey    keyMatch = iota // the text does not start with the key
	keyStart                 // the text ends inside a spelling of the key
	wholeKey                 // the text starts with the key
)

// keyFinder matches the key at the start of a text, each byte of the key
// written as itself or as part of a JSON or Go escape sequence. It is not
// safe for concurrent use: make one per text.
type keyFinder struct {
	key string
	// ends[k] holds the lengths of the text prefixes that spell key[:k];
	// ends[hi+1:] are empty.
	ends [][]int
	hi   int
}

func newKeyFinder(key string) *keyFinder {
	return &keyFinder{key: key, ends: make([][]int, len(key)+1)}
}

// candidate is a quick test that a spelling of the key may start b (not
// empty): with an escape, or with the key's first byte followed by its second
// byte, an escape or the end of the text.
func (f *keyFinder) candidate(b []byte) bool {
	switch {
	case b[0] == '\\' || b[0] == '%':
		return true
	case b[0] != f.key[0]:
		return false
	}
	return len(f.key) == 1 || len(b) == 1 || b[1] == f.key[1] || b[1] == '\\' || b[1] == '%'
}

// match reports whether b starts with the key (end is then the length of the
// longest spelling found) or ends inside a spelling of it.
func (f *keyFinder) match(b []byte) (end int, m keyMatch) {
	key := f.key
	for k := range f.hi + 1 {
		f.ends[k] = f.ends[k][:0]
	}
	f.ends[0], f.hi = append(f.ends[0], 0), 0
	var tmp [utf8.UTFMax]byte
	for k := 0; k < len(key) && k <= f.hi; k++ {
		for _, j := range f.ends[k] {
			if j == len(b) {
				m = keyStart
				continue
			}
			if b[j] == key[k] {
				f.add(k+1, j+1)
			}
			if b[j] != '\\' && b[j] != '%' {
				continue
			}
			dec, n, st := unescape(b[j:], tmp[:0])
			switch {
			case st == escCut:
				m = keyStart
			case st == escOK && len(dec) > 0 && len(dec) <= len(key)-k && string(dec) == key[k:k+len(dec)]:
				f.add(k+len(dec), j+n)
			}
		}
	}
	if e := f.ends[len(key)]; len(e) > 0 {
		return slices.Max(e), wholeKey
	}
	return 0, m
}

// add records that the text prefix of length j spells key[:k].
func (f *keyFinder) add(k, j int) {
	if !slices.Contains(f.ends[k], j) {
		f.ends[k] = append(f.ends[k], j)
	}
	f.hi = max(f.hi, k)
}

// escState is what unescape found.
type escState int

const (
	escBad escState = iota // not an escape sequence
	escCut                 // the text ends inside what may be an escape sequence
	escOK
)

// unescape decodes the escape sequence at the start of b (b[0] is a
// backslash), of JSON or of Go's quoting: it appends the bytes it stands for
// to dst and returns them with the length of the sequence. A UTF-16
// surrogate pair "\uD83D\uDE00" is one sequence; a lone surrogate stands for
// U+FFFD, as encoding/json decodes it. A percent-encoded byte ("%2F", b[0]
// is then '%') is decoded as well.
func unescape(b, dst []byte) (dec []byte, n int, st escState) {
	if len(b) < 2 {
		return nil, 0, escCut
	}
	if b[0] == '%' {
		h, st := hexAt(b, 1, 2)
		if st != escOK {
			return nil, 0, st
		}
		return append(dst, byte(h)), 3, escOK
	}
	if e := singleEscapes[b[1]]; e != 0 {
		return append(dst, e), 2, escOK
	}
	switch b[1] {
	case 'x':
		h, st := hexAt(b, 2, 2)
		if st != escOK {
			return nil, 0, st
		}
		return append(dst, byte(h)), 4, escOK
	case 'U':
		r, st := hexAt(b, 2, 8)
		if st != escOK {
			return nil, 0, st
		}
		return utf8.AppendRune(dst, r), 10, escOK
	case 'u':
		r, st := hexAt(b, 2, 4)
		if st != escOK {
			return nil, 0, st
		}
		if !utf16.IsSurrogate(r) {
			return utf8.AppendRune(dst, r), 6, escOK
		}
		if r < 0xDC00 { // a high surrogate: a low one may follow
			if len(b) < 8 {
				if bytes.HasPrefix([]byte(`\u`), b[6:]) {
					return nil, 0, escCut
				}
			} else if b[6] == '\\' && b[7] == 'u' {
				r2, st := hexAt(b, 8, 4)
				if st == escCut {
					return nil, 0, escCut
				}
				if st == escOK && r2 >= 0xDC00 && r2 <= 0xDFFF {
					return utf8.AppendRune(dst, utf16.DecodeRune(r, r2)), 12, escOK
				}
			}
		}
		return utf8.AppendRune(dst, utf8.RuneError), 6, escOK
	}
	return nil, 0, escBad
}

// singleEscapes maps the byte after a backslash to the byte that a two-byte
// JSON or Go escape stands for (0: not such an escape).
var singleEscapes = [256]byte{
	'"': '"', '\\': '\\', '/': '/', '\'': '\'',
	'a': '\a', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v',
}

// hexAt reads the n hex digits of b at off.
func hexAt(b []byte, off, n int) (rune, escState) {
	var r rune
	for i := off; i < off+n; i++ {
		if i >= len(b) {
			return 0, escCut
		}
		c := b[i]
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, escBad
		}
		r = r<<4 | rune(c)
	}
	return r, escOK
}

// redactKey replaces every spelling of key in b with the placeholder. It
// reports whether it found one; b itself is never modified (a text with the
// key comes back as a new slice, one without as b).
func redactKey(b []byte, key string) ([]byte, bool) {
	if key == "" {
		return b, false
	}
	f := newKeyFinder(key)
	var out []byte
	found := false
	last := 0
	for i := 0; i < len(b); {
		if !f.candidate(b[i:]) {
			i++
			continue
		}
		end, m := f.match(b[i:])
		if m != wholeKey {
			i++
			continue
		}
		out = append(out, b[last:i]...)
		out = append(out, redactedPlaceholder...)
		found = true
		i += end
		last = i
	}
	if found {
		b = append(out, b[last:]...)
	}
	for _, form := range base64Forms(key) {
		if bytes.Contains(b, form) {
			// A copy: b itself is never modified.
			b = bytes.ReplaceAll(b, form, []byte(redactedPlaceholder))
			found = true
		}
	}
	return b, found
}

// base64Forms returns the text that the key is in base64, standard or URL
// alphabet, wherever the encoding started before it: for each of the three
// places the key can take in a 3-byte group, the characters that encode only
// bytes of the key. The few characters around them, shared with the bytes
// before and after the key, tell at most a few bits of it.
func base64Forms(key string) [][]byte {
	var forms [][]byte
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for off := range 3 {
			text := enc.EncodeToString(append(make([]byte, off), key...))
			start, end := (8*off+5)/6, 8*(off+len(key))/6
			if end > start {
				forms = append(forms, []byte(text[start:end]))
			}
		}
	}
	return forms
}

// trimKeyStart drops a start of a spelling of key left at the end of b (a
// key that a cut of the text split).
func trimKeyStart(b []byte, key string) []byte {
	if key == "" {
		return b
	}
	f := newKeyFinder(key)
	forms := base64Forms(key)
	for i := max(0, len(b)-maxSpellingPerByte*len(key)); i < len(b); i++ {
		for _, form := range forms {
			if len(b)-i < len(form) && bytes.HasPrefix(form, b[i:]) {
				return b[:i]
			}
		}
		if !f.candidate(b[i:]) {
			continue
		}
		if _, m := f.match(b[i:]); m == keyStart {
			return b[:i]
		}
	}
	return b
}

// canonicalJSON rewrites one JSON value compactly with every string in the
// one spelling encoding/json gives it without HTML escaping ("\/" becomes
// '/', "\u0073" becomes 's', …), members kept in their order and numbers as
// written. ok is false if raw is not one valid JSON value.
func canonicalJSON(raw []byte) (text []byte, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	// n counts the tokens written in each open container: in an object,
	// names are the even ones and values the odd ones.
	type open struct {
		object bool
		n      int
	}
	var stack []open
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false
		}
		if d, isDelim := tok.(json.Delim); isDelim && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			out.WriteByte(byte(d))
			continue
		}
		if len(stack) > 0 {
			top := &stack[len(stack)-1]
			switch {
			case top.n == 0:
			case top.object && top.n%2 == 1:
				out.WriteByte(':')
			default:
				out.WriteByte(',')
			}
			top.n++
		} else if out.Len() > 0 {
			return nil, false // more than one value
		}
		switch v := tok.(type) {
		case json.Delim:
			out.WriteByte(byte(v))
			stack = append(stack, open{object: v == '{'})
		case string:
			if enc.Encode(v) != nil {
				return nil, false
			}
			out.Truncate(out.Len() - 1) // Encode ends the value with a newline
		case json.Number:
			out.WriteString(string(v))
		case bool:
			if v {
				out.WriteString("true")
			} else {
				out.WriteString("false")
			}
		case nil:
			out.WriteString("null")
		}
	}
	if len(stack) > 0 || out.Len() == 0 {
		return nil, false
	}
	return out.Bytes(), true
}
