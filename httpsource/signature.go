package httpsource

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// Protocol v2 binds every job to the request that asked for it
// (docs/protocol.md, "Signature"): the client sends a fresh nonce with
// GET /v1/entropy, and the service signs the job ID, that nonce, the size,
// the timestamp and SHA-256 of the entropy under SignatureDomainV2. A job
// signed for one request cannot be passed off as the answer to another.

// SignatureDomainV2 is the domain-separation prefix of a v2 signed message.
const SignatureDomainV2 = "provenrand/entropy/v2"

// NonceParam is the query parameter of GET /v1/entropy that carries the
// client's nonce, in lower-case hex: GET /v1/entropy?size=32&nonce=<hex>.
const NonceParam = "nonce"

// NonceHeader carries the job's nonce (lower-case hex) in the binary form of
// a completed job, as the "nonce" member does in JSON.
const NonceHeader = "X-Entropy-Nonce"

// Bounds of a nonce, in bytes.
const (
	MinNonceSize = 16
	MaxNonceSize = 64
)

// DefaultTimestampTolerance is how far a job's timestamp may lie before the
// request was sent or after its answer arrived, by the client's clock, before
// the client refuses the job (WithTimestampTolerance). It allows for clocks
// that disagree by a few minutes, not for a job made long ago.
const DefaultTimestampTolerance = 5 * time.Minute

// NewNonce returns MinNonceSize fresh bytes from crypto/rand: the nonce of
// one request.
func NewNonce() ([]byte, error) {
	b := make([]byte, MinNonceSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("httpsource: nonce: %w", err)
	}
	return b, nil
}

// EncodeNonce returns a nonce as it travels: lower-case hex.
func EncodeNonce(nonce []byte) string { return hex.EncodeToString(nonce) }

// DecodeNonce reads a nonce as it travels: lower-case hex of MinNonceSize to
// MaxNonceSize bytes. Anything else (upper case, odd length, other
// characters, too short or too long) is an error, so that one nonce has one
// spelling.
func DecodeNonce(s string) ([]byte, error) {
	if len(s) < 2*MinNonceSize || len(s) > 2*MaxNonceSize {
		return nil, fmt.Errorf("nonce of %d hex digits, want %d to %d", len(s), 2*MinNonceSize, 2*MaxNonceSize)
	}
	b, err := hex.DecodeString(s)
	if err != nil || hex.EncodeToString(b) != s {
		return nil, fmt.Errorf("nonce is not lower-case hex")
	}
	return b, nil
}

// CheckNonce reports whether nonce has an allowed size.
func CheckNonce(nonce []byte) error {
	if len(nonce) < MinNonceSize || len(nonce) > MaxNonceSize {
		return fmt.Errorf("httpsource: nonce of %d bytes, want %d to %d", len(nonce), MinNonceSize, MaxNonceSize)
	}
	return nil
}

// SignedMessageV2 returns the bytes the service signs for a job in protocol
// v2 (all integers big-endian, every variable-length field prefixed by its
// length, so that no two different jobs give the same bytes):
//
//	"provenrand/entropy/v2" 0x00
//	u32(len(job_id))    job_id      (UTF-8)
//	u32(len(nonce))     nonce       (the raw bytes, not their hex)
//	u32(size)                       (the number of entropy bytes)
//	u32(len(timestamp)) timestamp   (RFC 3339, exactly the text the answer carries)
//	SHA-256(entropy)                (32 raw bytes)
//
// size is normally len(data); it is a parameter so that a verifier can check
// a stated size against the signature.
func SignedMessageV2(jobID string, nonce []byte, size int, timestamp string, data []byte) []byte {
	sum := sha256.Sum256(data)
	msg := make([]byte, 0, len(SignatureDomainV2)+1+4+len(jobID)+4+len(nonce)+4+4+len(timestamp)+len(sum))
	msg = append(msg, SignatureDomainV2...)
	msg = append(msg, 0)
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(jobID)))
	msg = append(msg, jobID...)
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(nonce)))
	msg = append(msg, nonce...)
	msg = binary.BigEndian.AppendUint32(msg, uint32(size))
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(timestamp)))
	msg = append(msg, timestamp...)
	return append(msg, sum[:]...)
}

// VerifySignatureV2 reports whether sig is the service's v2 signature, under
// pub, of data as the entropy of job jobID made for the request with nonce,
// size bytes, at timestamp (the text as the answer carried it). A key or
// signature of the wrong size, a size that does not fit 32 bits or a field
// longer than 32 bits can count gives false.
func VerifySignatureV2(pub ed25519.PublicKey, jobID string, nonce []byte, size int, timestamp string, data, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	const max32 = 1<<32 - 1
	if size < 0 || uint64(size) > max32 || uint64(len(jobID)) > max32 || uint64(len(nonce)) > max32 || uint64(len(timestamp)) > max32 {
		return false
	}
	return ed25519.Verify(pub, SignedMessageV2(jobID, nonce, size, timestamp, data), sig)
}
