// Package evidence holds what binds a job to the request that asked for it
// and to the event it was drawn for: the schemes of an entropy.Proof and the
// nonce of an event's request. The root package, the sources that make
// proofs, package draw and the journals that check them share these values;
// docs/protocol.md gives the same in bytes.
package evidence

import (
	"crypto/sha256"
	"encoding/binary"
)

// Schemes of an entropy.Proof (its Scheme field).
const (
	// SchemeReferenceV2: a job of the reference protocol signed under
	// "provenrand/entropy/v2" (docs/protocol.md): the signature covers the
	// job ID, the client's nonce, the size, the timestamp and SHA-256(data).
	SchemeReferenceV2 = "provenrand/entropy/v2"
	// SchemeReferenceV1: a job signed under "provenrand/entropy/v1", which
	// covers only the job ID and SHA-256(data). Found in old transcripts;
	// no source makes such proofs any more.
	SchemeReferenceV1 = "provenrand/entropy/v1"
	// SchemeDrand: a drand beacon round: Chain names the chain (its hash),
	// Round the round, Signature the group's BLS signature and, on chained
	// chains, PrevSignature the previous round's. Data is SHA-256(Signature).
	SchemeDrand = "drand"
)

// nonceDomain opens the bytes hashed into an event's nonce (EventNonce),
// so that they can never be taken for another hash's input.
const nonceDomain = "provenrand/entropy event nonce v1"

// SaltSize is the size of the random salt of an event's request.
const SaltSize = 16

// EventNonce returns the nonce of a request for the job of a named event:
// SHA-256 of
//
//	"provenrand/entropy event nonce v1" || 0x00 ||
//	u32be(len(event)) || event || u32be(len(params)) || params ||
//	u32be(len(salt)) || salt
//
// (32 bytes). params are the draw's parameters in the caller's canonical
// encoding (package draw's Params), salt the random bytes chosen for the
// request (SaltSize). A service signs the nonce with the job (protocol v2),
// so whoever holds the job, the event name, the parameters and the salt
// sees that the job was requested for this event and these parameters: a
// job made for anything else has another nonce.
func EventNonce(event string, params, salt []byte) []byte {
	h := sha256.New()
	h.Write([]byte(nonceDomain))
	h.Write([]byte{0})
	var n [4]byte
	for _, part := range [][]byte{[]byte(event), params, salt} {
		binary.BigEndian.PutUint32(n[:], uint32(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	return h.Sum(nil)
}
