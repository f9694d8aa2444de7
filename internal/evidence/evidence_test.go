package evidence

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The nonce is a hash of the event, the params and the salt with their
// lengths, so moving bytes between them changes it; a test vector pins the
// construction docs/protocol.md gives (computed independently, with
// Python's hashlib).
func TestEventNonceSeparatesItsInputs(t *testing.T) {
	salt := bytes.Repeat([]byte{0x5a}, SaltSize)
	base := EventNonce("ab", []byte("c"), salt)
	assert.Len(t, base, 32)
	assert.NotEqual(t, base, EventNonce("a", []byte("bc"), salt))
	assert.NotEqual(t, base, EventNonce("ab", []byte("c"), salt[1:]))
	assert.NotEqual(t, base, EventNonce("ab", []byte("c"), append([]byte{1}, salt[1:]...)))
	assert.Equal(t, EventNonce("ab", nil, salt), EventNonce("ab", []byte{}, salt), "no params and empty params are one")
	assert.Equal(t, "ba0cd15c3a4b59111cddcccca8805827cc8395b7768608b07d749744cfcef20a", fmt.Sprintf("%x", EventNonce("lotto-2026-12-05", []byte("provenrand-draw/1;kind=pick;n=49;k=6"), make([]byte, SaltSize))))
}
