package drandsource

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Beacon is one round of a drand chain as a relay publishes it at
// /{chainhash}/public/{round}. Its randomness is public: everyone who asks
// gets the same bytes.
type Beacon struct {
	Round             uint64
	Signature         []byte // the group's BLS signature of the round
	PreviousSignature []byte // chained schemes only: the signature of round-1
	Randomness        []byte // SHA-256(Signature)
}

// beaconJSON is the wire form of a Beacon.
type beaconJSON struct {
	Round             uint64 `json:"round"`
	Randomness        string `json:"randomness"`
	Signature         string `json:"signature"`
	PreviousSignature string `json:"previous_signature,omitempty"`
}

// infoJSON is the wire form of /{chainhash}/info.
type infoJSON struct {
	PublicKey   string `json:"public_key"`
	Period      int64  `json:"period"`
	GenesisTime int64  `json:"genesis_time"`
	Hash        string `json:"hash"`
	GroupHash   string `json:"groupHash"`
	SchemeID    string `json:"schemeID"`
	Metadata    struct {
		BeaconID string `json:"beaconID"`
	} `json:"metadata"`
}

// Upper bounds on the hex fields of a beacon, in decoded bytes: nothing a
// relay sends for a known scheme is longer.
const (
	maxSigLen        = 96 // a compressed G2 point
	randomnessLength = 32 // SHA-256
)

// parseBeacon reads a beacon body. It checks the shape only (JSON, hex,
// lengths, a round > 0); Verify checks the signature.
func parseBeacon(body []byte) (Beacon, error) {
	var j beaconJSON
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&j); err != nil {
		return Beacon{}, fmt.Errorf("drandsource: beacon: %v: %w", err, ErrMalformed)
	}
	if dec.More() {
		return Beacon{}, fmt.Errorf("drandsource: beacon: data after the JSON object: %w", ErrMalformed)
	}
	if j.Round == 0 {
		return Beacon{}, fmt.Errorf("drandsource: beacon: no round: %w", ErrMalformed)
	}
	var b Beacon
	var err error
	b.Round = j.Round
	if b.Signature, err = decodeHex("signature", j.Signature, 1, maxSigLen); err != nil {
		return Beacon{}, err
	}
	if j.PreviousSignature != "" {
		if b.PreviousSignature, err = decodeHex("previous_signature", j.PreviousSignature, 1, maxPrevSig); err != nil {
			return Beacon{}, err
		}
	}
	if j.Randomness != "" {
		if b.Randomness, err = decodeHex("randomness", j.Randomness, randomnessLength, randomnessLength); err != nil {
			return Beacon{}, err
		}
	}
	return b, nil
}

// parseInfo reads a chain info body into a ChainInfo, Hash as the relay
// states it. It checks the shape only; checkInfo compares it with the pin.
func parseInfo(body []byte) (ChainInfo, error) {
	var j infoJSON
	if err := json.Unmarshal(body, &j); err != nil {
		return ChainInfo{}, fmt.Errorf("drandsource: chain info: %v: %w", err, ErrMalformed)
	}
	if j.Period <= 0 || j.Period > 1<<32-1 {
		return ChainInfo{}, fmt.Errorf("drandsource: chain info: period %d: %w", j.Period, ErrMalformed)
	}
	c := ChainInfo{
		Scheme:      j.SchemeID,
		Period:      time.Duration(j.Period) * time.Second,
		GenesisTime: j.GenesisTime,
		BeaconID:    j.Metadata.BeaconID,
	}
	var err error
	if c.PublicKey, err = decodeHex("public_key", j.PublicKey, 1, maxSigLen); err != nil {
		return ChainInfo{}, err
	}
	if c.GroupHash, err = decodeHex("groupHash", j.GroupHash, 1, 64); err != nil {
		return ChainInfo{}, err
	}
	if c.Hash, err = decodeHex("hash", j.Hash, 32, 32); err != nil {
		return ChainInfo{}, err
	}
	return c, nil
}

// checkInfo compares a relay's chain info with the pinned chain: the hash
// recomputed from the relay's fields, the hash it states and its scheme must
// all match. Errors match ErrWrongChain.
func checkInfo(pinned, got ChainInfo) error {
	if h := got.ComputeHash(); !bytes.Equal(h, pinned.Hash) {
		return fmt.Errorf("drandsource: relay's chain info hashes to %x, pinned %x: %w", h, pinned.Hash, ErrWrongChain)
	}
	if !bytes.Equal(got.Hash, pinned.Hash) {
		return fmt.Errorf("drandsource: relay states chain hash %x, pinned %x: %w", got.Hash, pinned.Hash, ErrWrongChain)
	}
	if got.Scheme != pinned.Scheme {
		return fmt.Errorf("drandsource: relay states scheme %q, pinned %q: %w", got.Scheme, pinned.Scheme, ErrWrongChain)
	}
	return nil
}

// decodeHex decodes a hex field of min to max bytes.
func decodeHex(field, s string, minLen, maxLen int) ([]byte, error) {
	if len(s) > 2*maxLen {
		return nil, fmt.Errorf("drandsource: %s of %d hex digits, at most %d: %w", field, len(s), 2*maxLen, ErrMalformed)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("drandsource: %s: %v: %w", field, err, ErrMalformed)
	}
	if len(b) < minLen {
		return nil, fmt.Errorf("drandsource: %s of %d bytes, at least %d: %w", field, len(b), minLen, ErrMalformed)
	}
	return b, nil
}
