package httpsource

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/provenrand/entropy"
)

// This file is the one home of the reference protocol's wire format
// (docs/protocol.md). The client in this package and the simulator
// in package sim both use these types, so the two cannot drift apart.

// Paths of the reference protocol.
const (
	EntropyPath   = "/v1/entropy"    // GET ?size=N: a new job
	JobsPath      = "/v1/jobs/"      // GET /v1/jobs/{job_id}: a job, then or later
	PublicKeyPath = "/v1/public-key" // GET: the service's Ed25519 public key
)

// Size limits of one entropy request.
const (
	MinSize = 1
	MaxSize = 65536
)

// Job states of the reference protocol. Queued and running mean "poll again".
const (
	StatusQueued    = "queued"
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	// StatusError is another spelling of a failed asynchronous
	// operation ({"status":"error", …}, the failure's fields beside it).
	// The client reads it as StatusFailed: a JobError with whatever code
	// and message the body has.
	StatusError = "error"
)

// RequestIDHeader is the response header that carries the request ID.
const RequestIDHeader = "X-Request-Id"

// The binary form of a completed job (docs/protocol.md, "Binary answers"):
// a client that lists MediaTypeBinary in its Accept header may get a
// completed job as the raw entropy bytes, with the other fields in headers.
// Every other answer stays JSON.
const (
	MediaTypeJSON   = "application/json"
	MediaTypeBinary = "application/octet-stream"

	// AcceptBinary is the Accept header of a client that takes both forms,
	// preferring the binary one.
	AcceptBinary = MediaTypeBinary + ", " + MediaTypeJSON + ";q=0.5"

	JobIDHeader     = "X-Job-Id"            // the job_id
	JobStatusHeader = "X-Job-Status"        // always "completed"
	TimestampHeader = "X-Entropy-Timestamp" // the timestamp, RFC 3339
	SignatureHeader = "X-Entropy-Signature" // the signature, standard padded base64
	// NonceHeader (signature.go) carries the v2 nonce, at most once.
)

// IsBinary reports whether a Content-Type header names the binary form:
// the media type application/octet-stream, whatever its parameters and case.
func IsBinary(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), MediaTypeBinary)
}

// AcceptsBinary reports whether an Accept header lists the binary form with
// a quality above zero. Only application/octet-stream itself counts (not
// "*/*" or "application/*"), so a client that did not ask gets JSON.
func AcceptsBinary(accept string) bool {
	for accept != "" {
		var part string
		part, accept, _ = strings.Cut(accept, ",")
		mt, params, _ := strings.Cut(part, ";")
		mt = strings.TrimSpace(mt)
		if !strings.EqualFold(mt, MediaTypeBinary) {
			continue
		}
		q := "1"
		for params != "" {
			var p string
			p, params, _ = strings.Cut(params, ";")
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				q = strings.TrimSpace(v)
			}
		}
		if f, err := strconv.ParseFloat(q, 64); err == nil && f > 0 && f <= 1 {
			return true
		}
	}
	return false
}

// SignatureDomain is the domain-separation prefix of a v1 signed message
// (SignedMessage). Protocol v2 signs under SignatureDomainV2.
const SignatureDomain = "provenrand/entropy/v1"

// JobResponse is the body of a 200 or 202 answer to GET /v1/entropy and of
// every answer to GET /v1/jobs/{job_id}.
//
// A completed job has Entropy, Timestamp and Signature, and in protocol v2
// the Nonce of the request that made it; a failed job has
// Error; a queued or running job has only JobID and Status.
type JobResponse struct {
	JobID     string       `json:"job_id"`
	Status    string       `json:"status"`
	Entropy   string       `json:"entropy,omitempty"`   // standard padded base64
	Nonce     string       `json:"nonce,omitempty"`     // v2: the request's nonce, lower-case hex
	Timestamp string       `json:"timestamp,omitempty"` // RFC 3339
	Signature string       `json:"signature,omitempty"` // standard padded base64 of the Ed25519 signature
	Error     *ErrorDetail `json:"error,omitempty"`     // failed jobs only
}

// ErrorDetail is a code and a message: the error of a failed job, and the
// inner object of the nested error body shape.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// BatchPath is the path of a batch request: POST a BatchRequest, and the
// answer is a BatchResponse (docs/protocol.md, "Batches").
const BatchPath = "/v1/entropy/batch"

// Limits of one batch request: at most MaxBatchItems items, of at most
// MaxBatchBytes bytes of entropy in all.
const (
	MaxBatchItems = 64
	MaxBatchBytes = 256 << 10
)

// BatchRequest is the body of POST /v1/entropy/batch: one item per job
// asked for, each with its own size and nonce.
type BatchRequest struct {
	Items []BatchRequestItem `json:"items"`
}

// BatchRequestItem is one job of a batch: its size (MinSize..MaxSize) and
// its nonce (lower-case hex, as the nonce parameter of GET /v1/entropy).
type BatchRequestItem struct {
	Size  int    `json:"size"`
	Nonce string `json:"nonce"`
}

// BatchResponse is the 200 answer of a batch: one item per item asked for,
// in the same order, each a job in its own right (a completed job, signed
// with its own nonce and size exactly as an answer of GET /v1/entropy, or a
// queued one to poll) or a failed one ({"status":"failed","error":{"code",
// "message"}}, a job_id only if the job was made).
type BatchResponse struct {
	Items []JobResponse `json:"items"`
}

// JobErrorResponse is the other form of a failed asynchronous job: the
// status is "error" and the failure's code, message and details sit beside
// it, not in an error object. The client reads it as a failed job.
type JobErrorResponse struct {
	JobID   string          `json:"job_id"`
	Status  string          `json:"status"` // always "error"
	Code    string          `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
	Details []ErrorItemBody `json:"details,omitempty"`
}

// ErrorItemBody is one item of a details list: the field it is about, what
// is wrong, and the kind of error.
type ErrorItemBody struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message,omitempty"`
	Type    string `json:"type,omitempty"`
}

// DetailsListErrorBody is {"details": [{"field","message","type"}, …]}:
// details as a list of items.
type DetailsListErrorBody struct {
	Details []ErrorItemBody `json:"details"`
}

// FastAPIErrorItem is one item of FastAPI's validation error list.
type FastAPIErrorItem struct {
	Loc  []string `json:"loc"`
	Msg  string   `json:"msg"`
	Type string   `json:"type"`
}

// FastAPIErrorBody is {"detail": [{"loc","msg","type"}, …]}, the error body
// of services built on FastAPI.
type FastAPIErrorBody struct {
	Detail []FastAPIErrorItem `json:"detail"`
}

// PublicKeyResponse is the body of GET /v1/public-key.
type PublicKeyResponse struct {
	Algorithm string `json:"algorithm"`  // always "ed25519"
	PublicKey string `json:"public_key"` // standard padded base64 of the 32-byte key
}

// The error body shapes services answer with. A service may answer an error with any
// of them, or with plain text; ParseErrorBody reads them all.
type (
	// StatusErrorBody is {"error","message","statusCode"}.
	StatusErrorBody struct {
		Error      string `json:"error"`
		Message    string `json:"message"`
		StatusCode int    `json:"statusCode"`
	}
	// DetailsErrorBody is {"details", ...}: details is a string
	// and other fields may follow. A details list (of strings, or of objects
	// such as {"field","message","type"}) and FastAPI's {"detail": [{"loc",
	// "msg","type"}]} are read too: see ParseErrorItems.
	DetailsErrorBody struct {
		Details string `json:"details"`
	}
	// CodeErrorBody is {"code","message"}.
	CodeErrorBody struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	// NestedErrorBody is {"error":{"code","message"}}.
	NestedErrorBody struct {
		Error ErrorDetail `json:"error"`
	}
)

// maxTextMessage bounds the message taken from a plain-text error body.
const maxTextMessage = 512

// ParseErrorBody extracts a machine code and a message from an error body in
// any of those shapes:
//
//   - {"error":"Unauthorized","message":"…","statusCode":401}: code "Unauthorized"
//   - {"details":"…", …}: message from details (a non-string details is kept
//     as compact JSON, its strings written without optional escapes)
//   - {"code":"…","message":"…"}
//   - {"error":{"code":"…","message":"…"}}
//   - anything else: the trimmed text is the message.
//
// Code and message are each one line of valid UTF-8 without control
// characters, of at most 512 bytes plus an ellipsis, whatever the shape: they
// go into errors and logs. An empty body gives two empty strings.
func ParseErrorBody(body []byte) (code, message string) {
	return parseErrorBody(body, plainText)
}

// parseErrorBody is ParseErrorBody with text, a plainText that may do more
// (remove the API key), making the code and message.
func parseErrorBody(body []byte, text func([]byte) string) (code, message string) {
	code, message, _ = parseErrorFields(body, text)
	return code, message
}

// ParseErrorItems returns the items of a details list or of
// FastAPI's detail list in an error body, in order, each field as one short
// line of text (as ParseErrorBody makes them); nil if the body has no such
// list. An item is read from an object's field (or "loc", a list of names
// joined with dots, or "param"), message (or "msg") and type (or "code"); a
// string item is a message. At most 64 items are kept.
func ParseErrorItems(body []byte) []entropy.ErrorItem {
	_, _, items := parseErrorFields(body, plainText)
	return items
}

// parseErrorFields is parseErrorBody with the structured items as well.
func parseErrorFields(body []byte, text func([]byte) string) (code, message string, items []entropy.ErrorItem) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return "", "", nil
	}
	var m map[string]json.RawMessage
	if trimmed[0] == '{' && json.Unmarshal(trimmed, &m) == nil {
		code, message = fromObject(m)
		code, message = text([]byte(code)), text([]byte(message))
		items = textItems(errorItems(m), text)
		if code != "" || message != "" || len(items) > 0 {
			return code, message, items
		}
	}
	return "", text(trimmed), nil
}

// maxErrorItems bounds the items taken from a details list.
const maxErrorItems = 64

// errorItems reads the details (or detail) list of an error object, as the
// service wrote its strings.
func errorItems(m map[string]json.RawMessage) []entropy.ErrorItem {
	raw, ok := m["details"]
	if !ok {
		raw, ok = m["detail"]
	}
	if !ok {
		return nil
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil || len(list) == 0 {
		return nil
	}
	items := make([]entropy.ErrorItem, 0, min(len(list), maxErrorItems))
	for _, el := range list {
		if len(items) == maxErrorItems {
			break
		}
		var s string
		if json.Unmarshal(el, &s) == nil {
			if s != "" {
				items = append(items, entropy.ErrorItem{Message: s})
			}
			continue
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(el, &obj) != nil {
			continue
		}
		it := entropy.ErrorItem{
			Field:   firstString(obj, "field", "param", "path", "name"),
			Message: firstString(obj, "message", "msg", "detail", "description"),
			Type:    firstString(obj, "type", "code", "error"),
		}
		if it.Field == "" {
			it.Field = location(obj["loc"])
		}
		if it != (entropy.ErrorItem{}) {
			items = append(items, it)
		}
	}
	if len(items) == 0 {
		return nil
	}
	return items
}

// firstString returns the first of keys whose value in obj is a non-empty
// string.
func firstString(obj map[string]json.RawMessage, keys ...string) string {
	for _, k := range keys {
		var s string
		if raw, ok := obj[k]; ok && json.Unmarshal(raw, &s) == nil && s != "" {
			return s
		}
	}
	return ""
}

// location joins FastAPI's loc list (["query","size"], ["body",0,"x"]) with
// dots; "" if raw is not such a list.
func location(raw json.RawMessage) string {
	var parts []any
	if len(raw) == 0 || json.Unmarshal(raw, &parts) != nil {
		return ""
	}
	var sb strings.Builder
	for i, p := range parts {
		if i > 0 {
			sb.WriteByte('.')
		}
		switch v := p.(type) {
		case string:
			sb.WriteString(v)
		case float64:
			sb.WriteString(strconv.FormatFloat(v, 'f', -1, 64))
		default:
			return ""
		}
	}
	return sb.String()
}

// textItems passes every field of items through text, dropping items left
// empty.
func textItems(items []entropy.ErrorItem, text func([]byte) string) []entropy.ErrorItem {
	if len(items) == 0 {
		return nil
	}
	out := items[:0]
	for _, it := range items {
		it = entropy.ErrorItem{Field: text([]byte(it.Field)), Message: text([]byte(it.Message)), Type: text([]byte(it.Type))}
		if it != (entropy.ErrorItem{}) {
			out = append(out, it)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// fromObject reads code and message out of a decoded JSON error object.
func fromObject(m map[string]json.RawMessage) (code, message string) {
	str := func(key string) string {
		var s string
		if raw, ok := m[key]; ok && json.Unmarshal(raw, &s) == nil {
			return s
		}
		return ""
	}
	if raw, ok := m["error"]; ok {
		var d ErrorDetail
		if json.Unmarshal(raw, &d) == nil && (d.Code != "" || d.Message != "") {
			code, message = d.Code, d.Message
		} else {
			code = str("error")
		}
	}
	if code == "" {
		code = str("code")
	}
	if message == "" {
		message = str("message")
	}
	for _, key := range []string{"details", "detail"} {
		if message != "" {
			break
		}
		raw, ok := m[key]
		if !ok {
			continue
		}
		if s := str(key); s != "" {
			message = s
		} else if items := errorItems(m); len(items) > 0 {
			// A list of items reads as its items, one after another.
			parts := make([]string, len(items))
			for i, it := range items {
				parts[i] = it.String()
			}
			message = strings.Join(parts, "; ")
		} else if text, ok := canonicalJSON(raw); ok && string(text) != "null" {
			// One spelling of every string, whatever escapes the
			// service chose: the text the caller redacts and reads.
			message = string(text)
		}
	}
	return code, message
}

// plainText returns b as one line of valid UTF-8 without control characters
// (a log line or a terminal shows it as it is), of at most maxTextMessage
// bytes plus an ellipsis, cut at a rune boundary.
func plainText(b []byte) string {
	return cutLine(oneLine(b), nil)
}

// oneLine returns b as one line of valid UTF-8 without control characters:
// plainText without the cut.
func oneLine(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// cutLine cuts s, if longer than maxTextMessage bytes, to at most that many
// at a rune boundary and adds an ellipsis. trim, if set, gets the cut text
// before the ellipsis goes on (to drop what the cut left of a secret).
func cutLine(s string, trim func(string) string) string {
	if len(s) <= maxTextMessage {
		return s
	}
	s = s[:maxTextMessage]
	if trim != nil {
		s = trim(s)
	}
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// SignedMessage returns the bytes a v1 service signed for a job:
// "provenrand/entropy/v1" 0x00 job_id 0x00 SHA-256(data), the digest as its
// 32 raw bytes. v1 binds nothing the client chose; only old jobs and
// transcripts carry it (see SignedMessageV2).
func SignedMessage(jobID string, data []byte) []byte {
	sum := sha256.Sum256(data)
	msg := make([]byte, 0, len(SignatureDomain)+1+len(jobID)+1+len(sum))
	msg = append(msg, SignatureDomain...)
	msg = append(msg, 0)
	msg = append(msg, jobID...)
	msg = append(msg, 0)
	return append(msg, sum[:]...)
}

// VerifySignature reports whether sig is the service's v1 signature, under
// pub, of data as the entropy of job jobID: how an old job is checked. A key
// of the wrong size gives false. Jobs of protocol v2 are checked with
// VerifySignatureV2.
func VerifySignature(pub ed25519.PublicKey, jobID string, data, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(pub, SignedMessage(jobID, data), sig)
}
