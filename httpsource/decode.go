package httpsource

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"

	"github.com/provenrand/entropy"
)

// jobBody is a job answer as read from the wire: like JobResponse, but the
// entropy, timestamp and signature are the text as sent (base64, RFC 3339),
// which may alias the buffer the body was read into. In the binary form
// (Binary set) Entropy is the raw entropy, the body itself.
type jobBody struct {
	JobID     string
	Status    string
	Entropy   []byte
	Nonce     []byte // the nonce's hex text; nil if the answer has none (v1)
	Timestamp []byte
	Signature []byte
	Error     *ErrorDetail
	Items     []entropy.ErrorItem // a failed job's details list, as sent
	common    bool                // read by scanJob: the common shape, nothing else in it
	Binary    bool
}

// binaryJob reads a completed job in the binary form: the body is the
// entropy, and the job ID, status, timestamp and signature are headers, each
// exactly once. The binary form is for completed jobs only.
func binaryJob(hdr http.Header, body []byte) (jobBody, error) {
	one := func(name string) (string, error) {
		v := hdr[name]
		if len(v) != 1 {
			return "", fmt.Errorf("%d %s headers, want 1", len(v), name)
		}
		return v[0], nil
	}
	var j jobBody
	var err error
	if j.JobID, err = one(JobIDHeader); err != nil {
		return jobBody{}, err
	}
	status, err := one(JobStatusHeader)
	if err != nil {
		return jobBody{}, err
	}
	if status != StatusCompleted {
		return jobBody{}, fmt.Errorf("%s is not %q: the binary form is for completed jobs only", JobStatusHeader, StatusCompleted)
	}
	j.Status = StatusCompleted
	ts, err := one(TimestampHeader)
	if err != nil {
		return jobBody{}, err
	}
	sig, err := one(SignatureHeader)
	if err != nil {
		return jobBody{}, err
	}
	j.Timestamp, j.Signature = []byte(ts), []byte(sig)
	switch v := hdr[NonceHeader]; len(v) {
	case 0:
	case 1:
		j.Nonce = []byte(v[0])
	default:
		return jobBody{}, fmt.Errorf("%d %s headers, want at most 1", len(v), NonceHeader)
	}
	j.Entropy, j.Binary = body, true
	return j, nil
}

// parseJob reads a job body. Bodies of the common shape take scanJob's
// short way; every other body goes through encoding/json into JobResponse.
// Both ways give the same fields, or the answer is malformed either way (see
// scanJob).
//
// A failed job ("status" of "failed", or "error") may carry its
// failure in any of the error body shapes (an "error" object or string,
// "code", "message", a details list): failedJob reads them all.
func parseJob(b []byte) (jobBody, error) {
	if j, ok := scanJob(b); ok {
		if j.Status == StatusError {
			j.Status = StatusFailed
		}
		j.common = true
		return j, nil
	}
	var r JobResponse
	if err := json.Unmarshal(b, &r); err != nil {
		if j, ok := failedJob(b); ok {
			return j, nil
		}
		return jobBody{}, err
	}
	if r.Status == StatusFailed || r.Status == StatusError {
		if j, ok := failedJob(b); ok {
			return j, nil
		}
	}
	return jobBody{
		JobID:     r.JobID,
		Status:    r.Status,
		Entropy:   []byte(r.Entropy),
		Nonce:     nonEmpty(r.Nonce),
		Timestamp: []byte(r.Timestamp),
		Signature: []byte(r.Signature),
		Error:     r.Error,
	}, nil
}

// nonEmpty returns s as bytes, or nil for "".
func nonEmpty(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// failedJob reads a body whose status is "failed" or "error" as a failed
// job: its job_id (a string, or absent), and the code, message and details
// of its failure in any of the error body shapes. ok is false for any other
// body.
func failedJob(b []byte) (jobBody, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return jobBody{}, false
	}
	var status, id string
	if json.Unmarshal(m["status"], &status) != nil || (status != StatusFailed && status != StatusError) {
		return jobBody{}, false
	}
	if raw, ok := m["job_id"]; ok && json.Unmarshal(raw, &id) != nil {
		return jobBody{}, false
	}
	delete(m, "status") // the status word is not the failure's message
	code, msg := fromObject(m)
	j := jobBody{JobID: id, Status: StatusFailed, Items: errorItems(m)}
	if code != "" || msg != "" {
		j.Error = &ErrorDetail{Code: code, Message: msg}
	}
	return j, true
}

// Members that scanJob knows, as bits of a set.
const (
	memberJobID = 1 << iota
	memberStatus
	memberEntropy
	memberTimestamp
	memberSignature
	memberNonce
)

// scanJob reads the shape every service of the protocol sends for a job
// that is not failed: one JSON object (whitespace around any token allowed)
// whose members are among job_id, status, entropy, nonce, timestamp and signature,
// each at most once, each a string. It reports ok only for such bodies, and
// returns exactly what encoding/json would decode from them:
//
//   - job_id, status, nonce, timestamp and signature must be printable ASCII
//     without a quote or backslash, so their text is their value;
//   - entropy must hold no quote, backslash, CR or LF. Any other byte that
//     JSON would refuse or rewrite (a control character, a byte of 0x80 or
//     more) is also outside the base64 alphabet, which the strict base64
//     decoding of the entropy refuses: such a body is malformed either way.
//
// Every other body (escapes, other members or value types, duplicate or
// differently cased names, trailing data, invalid JSON) gives ok false and
// is left to encoding/json. The scan is a shortcut for one shape, never a
// second, looser reading of JSON.
func scanJob(b []byte) (j jobBody, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return jobBody{}, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return jobBody{}, skipSpace(b, i+1) == len(b)
	}
	var seen int
	for {
		var name, val []byte
		if name, i, ok = scanPlain(b, i); !ok {
			return jobBody{}, false
		}
		if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
			return jobBody{}, false
		}
		i = skipSpace(b, i+1)
		var member int
		switch string(name) {
		case "job_id":
			member = memberJobID
		case "status":
			member = memberStatus
		case "entropy":
			member = memberEntropy
		case "timestamp":
			member = memberTimestamp
		case "signature":
			member = memberSignature
		case "nonce":
			member = memberNonce
		default:
			return jobBody{}, false
		}
		if seen&member != 0 {
			return jobBody{}, false
		}
		seen |= member
		if member == memberEntropy {
			val, i, ok = scanBase64Text(b, i)
		} else {
			val, i, ok = scanPlain(b, i)
		}
		if !ok {
			return jobBody{}, false
		}
		switch member {
		case memberJobID:
			j.JobID = string(val)
		case memberStatus:
			j.Status = knownStatus(val)
		case memberEntropy:
			j.Entropy = val
		case memberTimestamp:
			j.Timestamp = val
		case memberSignature:
			j.Signature = val
		case memberNonce:
			j.Nonce = nonEmpty(string(val))
		}
		if i = skipSpace(b, i); i >= len(b) {
			return jobBody{}, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return j, skipSpace(b, i+1) == len(b)
		default:
			return jobBody{}, false
		}
	}
}

// knownStatus returns v as a string, without allocating for the protocol's
// own states.
func knownStatus(v []byte) string {
	switch string(v) {
	case StatusCompleted:
		return StatusCompleted
	case StatusQueued:
		return StatusQueued
	case StatusRunning:
		return StatusRunning
	case StatusFailed:
		return StatusFailed
	}
	return string(v)
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanPlain reads a JSON string at b[i] whose bytes are all printable ASCII
// other than quote and backslash, and returns its text and the index after
// its closing quote.
func scanPlain(b []byte, i int) (val []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for k := i + 1; k < len(b); k++ {
		switch c := b[k]; {
		case c == '"':
			return b[i+1 : k], k + 1, true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// scanBase64Text reads a JSON string at b[i] that holds no backslash, CR or
// LF, and returns its text and the index after its closing quote. Its other
// bytes are checked by the strict base64 decoding that follows (see scanJob).
func scanBase64Text(b []byte, i int) (val []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	end := bytes.IndexByte(b[i+1:], '"')
	if end < 0 {
		return nil, 0, false
	}
	val = b[i+1 : i+1+end]
	if bytes.IndexByte(val, '\\') >= 0 || bytes.IndexByte(val, '\n') >= 0 || bytes.IndexByte(val, '\r') >= 0 {
		return nil, 0, false
	}
	return val, i + 2 + end, true
}

// Read buffers of answer bodies are reused. Buffers that grew past
// maxPooledBuffer (an answer larger than the protocol's largest) are left to
// the garbage collector.
const (
	initialBuffer   = 4 << 10
	maxPooledBuffer = 128 << 10
)

var bufferPool = sync.Pool{New: func() any { b := make([]byte, 0, initialBuffer); return &b }}

// readBody reads r up to limit bytes into a buffer from the pool, sized at
// once from the answer's Content-Length when it declares one (never beyond
// limit+1). tooLong reports that there was more than limit. The caller gives
// the buffer back with releaseBuffer once nothing refers to the body.
func readBody(r io.Reader, contentLength, limit int64) (buf *[]byte, body []byte, tooLong bool, err error) {
	stop := limit + 1 // read one byte past the limit to tell "more" from "exactly"
	if stop <= 0 || stop > math.MaxInt32 {
		stop = math.MaxInt32
	}
	buf = bufferPool.Get().(*[]byte)
	b := (*buf)[:0]
	want := int64(initialBuffer)
	if contentLength >= 0 {
		// One byte more than declared, to see EOF without growing.
		want = contentLength + 1
	}
	if want = min(want, stop); int64(cap(b)) < want {
		b = make([]byte, 0, want)
	}
	for int64(len(b)) < stop {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, rerr := r.Read(b[len(b):min(cap(b), int(stop))])
		b = b[:len(b)+n]
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	*buf = b
	if int64(len(b)) > limit {
		return buf, b[:limit], true, err
	}
	return buf, b, false, err
}

// releaseBuffer wipes a buffer of readBody (it held entropy, raw or in
// base64, that the block now has its own copy of) and gives it back to the
// pool.
func releaseBuffer(buf *[]byte) {
	if buf == nil {
		return
	}
	clear(*buf)
	if cap(*buf) > maxPooledBuffer {
		return
	}
	*buf = (*buf)[:0]
	bufferPool.Put(buf)
}
