package drandsource

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Scheme identifiers of the drand chains this package verifies.
const (
	// SchemeUnchainedG1 is quicknet's scheme: signatures on G1 (48 bytes),
	// public key on G2 (96 bytes), message sha256(u64be(round)), hashed to G1
	// with RFC 9380 and the DST BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_.
	SchemeUnchainedG1 = "bls-unchained-g1-rfc9380"
	// SchemeChained is the default chain's scheme: signatures on G2 (96
	// bytes), public key on G1 (48 bytes), message
	// sha256(previous_signature || u64be(round)), hashed to G2 with the DST
	// BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_.
	SchemeChained = "pedersen-bls-chained"
)

// ChainInfo holds the public parameters of one drand chain, as its relays
// publish them at /{chainhash}/info. Hash is the chain hash that pins them all
// except Scheme (see ComputeHash); a Source refuses a relay whose info does not
// match it.
type ChainInfo struct {
	Scheme      string        // SchemeUnchainedG1 or SchemeChained
	PublicKey   []byte        // the group's BLS public key, compressed
	Period      time.Duration // time between rounds, a whole number of seconds
	GenesisTime int64         // Unix time (seconds) at which round 1 is due
	GroupHash   []byte        // hash of the group file (the genesis seed)
	BeaconID    string        // "quicknet", "default", …; "" means "default"
	Hash        []byte        // the chain hash, 32 bytes
}

// ComputeHash returns the chain hash of c's fields, as drand defines it:
// sha256(u32be(period in seconds) || i64be(genesis) || public_key ||
// group_hash || beacon_id), the beacon ID left out when it is "" or
// "default". It ignores c.Hash, so c.ComputeHash() equal to c.Hash checks the
// fields against the pin. The scheme is not part of the hash.
func (c ChainInfo) ComputeHash() []byte {
	h := sha256.New()
	var buf [8]byte
	binary.BigEndian.PutUint32(buf[:4], uint32(c.Period/time.Second))
	h.Write(buf[:4])
	binary.BigEndian.PutUint64(buf[:], uint64(c.GenesisTime))
	h.Write(buf[:])
	h.Write(c.PublicKey)
	h.Write(c.GroupHash)
	if c.BeaconID != "" && c.BeaconID != "default" {
		h.Write([]byte(c.BeaconID))
	}
	return h.Sum(nil)
}

// HashString returns c.Hash in lower-case hex, as it appears in relay URLs.
func (c ChainInfo) HashString() string { return hex.EncodeToString(c.Hash) }

// name returns the beacon ID, "default" for "".
func (c ChainInfo) name() string {
	if c.BeaconID == "" {
		return "default"
	}
	return c.BeaconID
}

// Validate checks that c is complete and self-consistent: a known scheme, a
// public key of that scheme's length, a period of at least one whole second,
// a genesis time, a 32-byte Hash, and ComputeHash equal to Hash. It does not
// decode the public key; Verify does.
func (c ChainInfo) Validate() error {
	keyLen, ok := keyLengths[c.Scheme]
	switch {
	case !ok:
		return fmt.Errorf("drandsource: chain %q: %w %q", c.name(), ErrUnknownScheme, c.Scheme)
	case len(c.PublicKey) != keyLen:
		return fmt.Errorf("drandsource: chain %q: public key of %d bytes, want %d for %s", c.name(), len(c.PublicKey), keyLen, c.Scheme)
	case c.Period < time.Second || c.Period%time.Second != 0 || c.Period/time.Second > 1<<32-1:
		return fmt.Errorf("drandsource: chain %q: period %v is not a whole number of seconds ≥ 1s", c.name(), c.Period)
	case c.GenesisTime <= 0:
		return fmt.Errorf("drandsource: chain %q: genesis time %d", c.name(), c.GenesisTime)
	case len(c.Hash) != sha256.Size:
		return fmt.Errorf("drandsource: chain %q: chain hash of %d bytes, want %d (the hash pins the chain)", c.name(), len(c.Hash), sha256.Size)
	}
	if got := c.ComputeHash(); !bytes.Equal(got, c.Hash) {
		return fmt.Errorf("drandsource: chain %q: %w: fields hash to %x, pinned %x", c.name(), ErrWrongChain, got, c.Hash)
	}
	return nil
}

// clone returns a deep copy of c.
func (c ChainInfo) clone() ChainInfo {
	c.PublicKey = bytes.Clone(c.PublicKey)
	c.GroupHash = bytes.Clone(c.GroupHash)
	c.Hash = bytes.Clone(c.Hash)
	return c
}

// genesis returns the time round 1 is due.
func (c ChainInfo) genesis() time.Time { return time.Unix(c.GenesisTime, 0) }

// RoundTime returns the time round is due: genesis + (round-1)·period. Round
// 0, which drand never publishes, maps to the genesis time.
func (c ChainInfo) RoundTime(round uint64) time.Time {
	if round <= 1 || c.Period <= 0 {
		return c.genesis()
	}
	secs := uint64(c.Period / time.Second)
	if secs == 0 {
		secs = 1
	}
	steps := round - 1
	const maxSecs = 1 << 62 // keep Unix arithmetic clear of overflow
	if steps > maxSecs/secs || uint64(c.GenesisTime) > maxSecs-steps*secs {
		return time.Unix(maxSecs, 0)
	}
	return time.Unix(c.GenesisTime+int64(steps*secs), 0)
}

// RoundAt returns the latest round due at t: the round r with RoundTime(r) ≤ t
// < RoundTime(r+1). Before genesis it returns 0: no round is due yet.
func (c ChainInfo) RoundAt(t time.Time) uint64 {
	g := c.genesis()
	if t.Before(g) || c.Period <= 0 {
		return 0
	}
	secs := int64(c.Period / time.Second)
	if secs <= 0 {
		secs = 1
	}
	// Whole seconds since genesis: round times are whole seconds, so the
	// sub-second part of t never changes the answer.
	since := t.Unix() - c.GenesisTime
	return uint64(since/secs) + 1
}

// FirstRoundAfter returns the first round due strictly after t: the round a
// draw should commit to when it publishes t in advance, because nobody, the
// drand network included, can know its randomness before t.
func (c ChainInfo) FirstRoundAfter(t time.Time) uint64 { return c.RoundAt(t) + 1 }

// keyLengths maps each known scheme to the length of its public key.
var keyLengths = map[string]int{
	SchemeUnchainedG1: 96,
	SchemeChained:     48,
}

// Pinned parameters of the League of Entropy mainnet chains.
var (
	quicknet = ChainInfo{
		Scheme:      SchemeUnchainedG1,
		PublicKey:   mustHex("83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e760183c8c4b450b6a0a6c3ac6a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb5ed66304de9cf809bd274ca73bab4af5a6e9c76a4bc09e76eae8991ef5ece45a"),
		Period:      3 * time.Second,
		GenesisTime: 1692803367,
		GroupHash:   mustHex("f477d5c89f21a17c863a7f937c6a6d15859414d2be09cd448d4279af331c5d3e"),
		BeaconID:    "quicknet",
		Hash:        mustHex("52db9ba70e0cc0f6eaf7803dd07447a1f5477735fd3f661792ba94600c84e971"),
	}
	defaultChain = ChainInfo{
		Scheme:      SchemeChained,
		PublicKey:   mustHex("868f005eb8e6e4ca0a47c8a77ceaa5309a47978a7c71bc5cce96366b5d7a569937c529eeda66c7293784a9402801af31"),
		Period:      30 * time.Second,
		GenesisTime: 1595431050,
		GroupHash:   mustHex("176f93498eac9ca337150b46d21dd58673ea4e3581185f869672e59fa4cb390a"),
		BeaconID:    "default",
		Hash:        mustHex("8990e7a9aaed2ffed73dbd7092123d6f289930540d7651336225dc172e51b2ce"),
	}
)

// Quicknet returns the pinned parameters of the League of Entropy's quicknet
// chain: a round every 3 seconds, unchained, signatures on G1. It is the chain
// to use for new work. Each call returns a fresh copy, so no caller can alter
// the pin another caller relies on.
func Quicknet() ChainInfo { return quicknet.clone() }

// Default returns the pinned parameters of the League of Entropy's original
// "default" chain: a round every 30 seconds, chained (each signature covers
// the previous one), signatures on G2. Each call returns a fresh copy.
func Default() ChainInfo { return defaultChain.clone() }

// Chain returns the pinned chain called name: "quicknet" or "default" (case
// does not matter), or the chain hash in hex of one of them.
func Chain(name string) (ChainInfo, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	for _, c := range []ChainInfo{quicknet, defaultChain} {
		if n == c.BeaconID || n == c.HashString() {
			return c.clone(), nil
		}
	}
	return ChainInfo{}, fmt.Errorf("drandsource: unknown chain %q (known: quicknet, default)", name)
}

// mustHex decodes a hex constant of this package.
func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(errors.New("drandsource: bad hex constant"))
	}
	return b
}

// ParseChainInfo reads a chain's info in the form its relays publish at
// /{chainhash}/info ({"public_key", "period", "genesis_time", "hash",
// "groupHash", "schemeID", "metadata": {"beaconID"}}) and checks it
// (Validate): its fields must hash to its stated hash. It is how a verifier
// takes a chain it trusts out of band, for package draw's TrustRoots.
func ParseChainInfo(b []byte) (ChainInfo, error) {
	c, err := parseInfo(b)
	if err != nil {
		return ChainInfo{}, err
	}
	if err := c.Validate(); err != nil {
		return ChainInfo{}, err
	}
	return c, nil
}
