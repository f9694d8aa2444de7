package drandsource

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzParseBeacon: no body makes parseBeacon panic, and what it accepts has
// the shape the verifier relies on. A beacon it accepts that also verifies
// under the quicknet key must carry the randomness of its signature.
func FuzzParseBeacon(f *testing.F) {
	vs := loadVectors(f)
	for _, v := range vs {
		b, err := json.Marshal(v.json())
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte(`{"round":1,"signature":"00"}`))
	f.Add([]byte(`{"round":0,"signature":"00"}`))
	f.Add([]byte(`{"round":18446744073709551615,"signature":"c0","randomness":""}`))
	f.Add([]byte(`{"round":-1}`))
	f.Add([]byte(`{"round":1,"signature":"0"}`))
	f.Add([]byte(`{"round":1,"signature":"00"} {}`))
	f.Add([]byte(`{"round":"1"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Add(bytes.Repeat([]byte("a"), 300))
	q := vs["quicknet"]

	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := parseBeacon(body)
		if err != nil {
			require.Zero(t, b.Round, "nothing returned with an error")
			return
		}
		require.NotZero(t, b.Round)
		require.NotEmpty(t, b.Signature)
		require.LessOrEqual(t, len(b.Signature), maxSigLen)
		require.LessOrEqual(t, len(b.PreviousSignature), maxPrevSig)
		if b.Randomness != nil {
			require.Len(t, b.Randomness, randomnessLength)
		}
		if r, err := Verify(q.chain.Scheme, q.chain.PublicKey, b.Round, b.PreviousSignature, b.Signature); err == nil {
			sum := sha256.Sum256(b.Signature)
			require.Equal(t, sum[:], r)
		}
	})
}

// FuzzVerify: Verify never panics on any scheme, key, round, previous
// signature or signature, and accepts only what it accepted before a change
// of round.
func FuzzVerify(f *testing.F) {
	vs := loadVectors(f)
	for _, v := range vs {
		f.Add(v.chain.Scheme, v.chain.PublicKey, v.round, v.prevSig, v.sig)
		f.Add(v.chain.Scheme, v.chain.PublicKey, v.round, v.prevSig, flip(v.sig, 9))
		f.Add(v.chain.Scheme, flip(v.chain.PublicKey, 17), v.round, v.prevSig, v.sig)
	}
	f.Add("", []byte{}, uint64(0), []byte{}, []byte{})
	f.Add(SchemeChained, make([]byte, 48), uint64(1), []byte{0}, make([]byte, 96))
	f.Fuzz(func(t *testing.T, scheme string, key []byte, round uint64, prev, sig []byte) {
		r, err := Verify(scheme, key, round, prev, sig)
		if err != nil {
			require.Nil(t, r)
			return
		}
		sum := sha256.Sum256(sig)
		require.Equal(t, sum[:], r)
		_, err = Verify(scheme, key, round+1, prev, sig)
		require.Error(t, err, "a signature verifies for one round only")
	})
}
