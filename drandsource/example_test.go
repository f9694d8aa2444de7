package drandsource_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/drandsource"
)

// A real quicknet beacon (round 123), as any relay serves it.
const (
	exampleRound      = 123
	exampleSignature  = "b75c69d0b72a5d906e854e808ba7e2accb1542ac355ae486d591aa9d43765482e26cd02df835d3546d23c4b13e0dfc92"
	exampleRandomness = "fb8f7bc29bf24db51871ec8c79f3a1e4bd0557bc0dfcee9ed1d924e69d1c60dc"
)

// An auditor checks a drand label offline: the span's job ID is the round,
// the block's proof is the signature, and the pinned chain gives the scheme
// and key.
func ExampleVerify() {
	chain := drandsource.Quicknet()
	sig, _ := hex.DecodeString(exampleSignature)
	randomness, err := drandsource.Verify(chain.Scheme, chain.PublicKey, exampleRound, nil, sig)
	if err != nil {
		fmt.Println("rejected:", err)
		return
	}
	fmt.Printf("round %d randomness %x\n", exampleRound, randomness[:8])

	_, err = drandsource.Verify(chain.Scheme, chain.PublicKey, exampleRound+1, nil, sig)
	fmt.Println("as another round:", err != nil)
	// Output:
	// round 123 randomness fb8f7bc29bf24db5
	// as another round: true
}

// A draw publishes in advance the time after which its round falls, so that
// nobody, the drand network included, can know the randomness when the draw
// is announced.
func ExampleChainInfo_FirstRoundAfter() {
	chain := drandsource.Quicknet()
	announced := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	round := chain.FirstRoundAfter(announced)
	fmt.Println("round", round, "due", chain.RoundTime(round).UTC().Format(time.RFC3339))
	// Output:
	// round 18658613 due 2025-06-01T12:00:03Z
}

// A Source over drand relays. The example serves the real round 123 from a
// local relay and sets the clock to that round's time; in production, pass
// drandsource.PublicRelays() and no clock.
func ExampleNew() {
	chain := drandsource.Quicknet()
	relay := exampleRelay(chain)
	defer relay.Close()

	src, err := drandsource.New(chain, []string{relay.URL},
		drandsource.WithClock(entropy.NowFunc(func() time.Time { return chain.RoundTime(exampleRound) })))
	if err != nil {
		fmt.Println(err)
		return
	}
	blk, err := src.Fetch(context.Background(), 32)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Verified, and public: fit for a draw, never for a key.
	fmt.Println(blk.Source, "round", blk.JobID, "verifiable", blk.Verifiable)
	fmt.Println(hex.EncodeToString(blk.Data) == exampleRandomness)
	// Output:
	// drand/quicknet round 123 verifiable true
	// true
}

// A draw reads the round it committed to; FetchRound waits until it is due.
func ExampleSource_FetchRound() {
	chain := drandsource.Quicknet()
	relay := exampleRelay(chain)
	defer relay.Close()
	now := chain.RoundTime(exampleRound)
	src, err := drandsource.New(chain, []string{relay.URL}, drandsource.WithClock(entropy.NowFunc(func() time.Time { return now })))
	if err != nil {
		fmt.Println(err)
		return
	}
	announced := now.Add(-time.Second) // published before the round
	blk, err := src.FetchRound(context.Background(), src.FirstRoundAfter(announced))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("round", blk.JobID, "bytes", len(blk.Data))
	_, err = src.FetchRound(context.Background(), exampleRound)
	fmt.Println("again:", err != nil)
	// Output:
	// round 123 bytes 32
	// again: true
}

// exampleRelay serves chain info and round 123 of quicknet, as a public
// relay would.
func exampleRelay(chain drandsource.ChainInfo) *httptest.Server {
	info := fmt.Sprintf(`{"public_key":"%x","period":%d,"genesis_time":%d,"hash":"%x","groupHash":"%x","schemeID":%q,"metadata":{"beaconID":%q}}`,
		chain.PublicKey, int(chain.Period/time.Second), chain.GenesisTime, chain.Hash, chain.GroupHash, chain.Scheme, chain.BeaconID)
	beacon := fmt.Sprintf(`{"round":%d,"randomness":%q,"signature":%q}`, exampleRound, exampleRandomness, exampleSignature)
	prefix := "/" + chain.HashString() + "/"
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimPrefix(r.URL.Path, prefix) {
		case "info":
			fmt.Fprint(w, info)
		case "public/latest", fmt.Sprint("public/", exampleRound):
			fmt.Fprint(w, beacon)
		default:
			http.NotFound(w, r)
		}
	}))
}

var _ entropy.Source = (*drandsource.Source)(nil)
