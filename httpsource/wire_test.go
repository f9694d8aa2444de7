package httpsource_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"

	"github.com/provenrand/entropy/httpsource"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSignedMessageLayout(t *testing.T) {
	data := []byte("abc")
	msg := httpsource.SignedMessage("job-7", data)
	sum := sha256.Sum256(data)
	want := "provenrand/entropy/v1" + "\x00" + "job-7" + "\x00" + string(sum[:])
	assert.Equal(t, []byte(want), msg)
	assert.Equal(t, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hex.EncodeToString(msg[len(msg)-32:]))
}

func TestVerifySignature(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	pub := priv.Public().(ed25519.PublicKey)
	data := []byte{1, 2, 3}
	sig := ed25519.Sign(priv, httpsource.SignedMessage("j", data))
	assert.True(t, httpsource.VerifySignature(pub, "j", data, sig))
	assert.False(t, httpsource.VerifySignature(pub, "k", data, sig), "other job")
	assert.False(t, httpsource.VerifySignature(pub, "j", []byte{1, 2, 4}, sig), "other data")
	assert.False(t, httpsource.VerifySignature(pub[:31], "j", data, sig), "short key")
	assert.False(t, httpsource.VerifySignature(pub, "j", data, sig[:63]), "short signature")
	assert.False(t, httpsource.VerifySignature(nil, "j", data, sig), "no key")
}

func TestParseErrorBody(t *testing.T) {
	for _, tc := range []struct {
		body, code, message string
	}{
		{`{"error":"Unauthorized","message":"Invalid API key","statusCode":401}`, "Unauthorized", "Invalid API key"},
		{`{"details":"Wrong value","field":"id"}`, "", "Wrong value"},
		{`{"details":{"size":["must be positive"]}}`, "", `{"size":["must be positive"]}`},
		{`{"code":"InsufficientBalance","message":"Top up"}`, "InsufficientBalance", "Top up"},
		{`{"error":{"code":"RateLimited","message":"slow down"}}`, "RateLimited", "slow down"},
		{`{"error":"Not Found"}`, "Not Found", ""},
		{`{"message":"only a message"}`, "", "only a message"},
		{`Service Unavailable`, "", "Service Unavailable"},
		{"  multi\n line\ttext  ", "", "multi line text"},
		{`{"unrelated":1}`, "", `{"unrelated":1}`},
		{`[1,2]`, "", `[1,2]`},
		{`{"error":`, "", `{"error":`},
		{``, "", ""},
		{"\xff\xfe", "", "\uFFFD"},
	} {
		code, msg := httpsource.ParseErrorBody([]byte(tc.body))
		assert.Equal(t, tc.code, code, "body %q", tc.body)
		assert.Equal(t, tc.message, msg, "body %q", tc.body)
	}
	_, msg := httpsource.ParseErrorBody([]byte(strings.Repeat("a", 5000)))
	assert.LessOrEqual(t, len(msg), 520, "a plain-text message is bounded")
}
