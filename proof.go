package entropy

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/provenrand/entropy/internal/strictjson"
)

// Proof is what a third party needs to check one job offline, with only a
// trust root (the service's public key, a drand chain's info): the job's
// bytes and the signature that binds them to the request that asked for
// them. package draw puts proofs into transcripts and checks them.
//
// A source's [Block] carries its Proof in Block.Evidence without Data (the
// bytes are Block.Data); a Proof that leaves the [Provider] ([Provider.ReadProven], an
// event record) has Data, the job's whole entropy.
type Proof struct {
	// Scheme is how the job is signed: "provenrand/entropy/v2" (the
	// reference protocol, docs/protocol.md: the signature covers the job
	// ID, the client's nonce, the size, the timestamp and SHA-256(Data)),
	// "provenrand/entropy/v1" (old transcripts: the job ID and
	// SHA-256(Data) only) or "drand" (a beacon round: Chain, Round,
	// Signature and, on chained chains, PrevSignature; Data is
	// SHA-256(Signature)).
	Scheme string
	Source string // the source name, as in the span
	JobID  string // the job ID (drand: the round in decimal), as in the span
	Data   []byte // the job's whole entropy

	Nonce     []byte // v2: the nonce the request carried
	Size      int    // v2: the size the service signed (len(Data))
	Timestamp string // reference protocol: the timestamp, exactly as signed (RFC 3339)
	Signature []byte // the service's signature (drand: the BLS signature)

	Chain         []byte // drand: the chain hash
	Round         uint64 // drand: the round
	PrevSignature []byte // drand, chained chains: the previous round's signature
}

// Clone returns a deep copy of p.
func (p Proof) Clone() Proof {
	p.Data = bytes.Clone(p.Data)
	p.Nonce = bytes.Clone(p.Nonce)
	p.Signature = bytes.Clone(p.Signature)
	p.Chain = bytes.Clone(p.Chain)
	p.PrevSignature = bytes.Clone(p.PrevSignature)
	return p
}

// proofJSON is the wire form of a Proof: bytes in lower-case hex, members
// that a scheme does not use left out.
type proofJSON struct {
	Scheme        string `json:"scheme"`
	Source        string `json:"source"`
	JobID         string `json:"job_id"`
	Data          string `json:"data"`
	Nonce         string `json:"nonce,omitempty"`
	Size          int    `json:"size,omitempty"`
	Timestamp     string `json:"timestamp,omitempty"`
	Signature     string `json:"signature"`
	Chain         string `json:"chain,omitempty"`
	Round         uint64 `json:"round,omitempty"`
	PrevSignature string `json:"previous_signature,omitempty"`
}

// MarshalJSON writes the proof with its bytes in lower-case hex:
// {"scheme","source","job_id","data","nonce"?,"size"?,"timestamp"?,
// "signature","chain"?,"round"?,"previous_signature"?}.
func (p Proof) MarshalJSON() ([]byte, error) {
	return json.Marshal(proofJSON{
		Scheme: p.Scheme, Source: p.Source, JobID: p.JobID, Data: hex.EncodeToString(p.Data),
		Nonce: hex.EncodeToString(p.Nonce), Size: p.Size, Timestamp: p.Timestamp,
		Signature: hex.EncodeToString(p.Signature), Chain: hex.EncodeToString(p.Chain),
		Round: p.Round, PrevSignature: hex.EncodeToString(p.PrevSignature),
	})
}

// UnmarshalJSON reads what MarshalJSON wrote, strictly: an unknown member, a
// member in other case or given twice, or bytes that are not lower-case hex
// are errors. It checks the form only; package draw checks the proof.
func (p *Proof) UnmarshalJSON(b []byte) error {
	if err := strictjson.Keys(b); err != nil {
		return fmt.Errorf("entropy: proof: %w", err)
	}
	var j proofJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("entropy: proof: %w", err)
	}
	if dec.More() {
		return errors.New("entropy: proof: data after the object")
	}
	out := Proof{Scheme: j.Scheme, Source: j.Source, JobID: j.JobID, Size: j.Size, Timestamp: j.Timestamp, Round: j.Round}
	for _, f := range []struct {
		name string
		text string
		dst  *[]byte
	}{
		{"data", j.Data, &out.Data},
		{"nonce", j.Nonce, &out.Nonce},
		{"signature", j.Signature, &out.Signature},
		{"chain", j.Chain, &out.Chain},
		{"previous_signature", j.PrevSignature, &out.PrevSignature},
	} {
		if f.text == "" {
			continue
		}
		raw, err := hex.DecodeString(f.text)
		if err != nil || hex.EncodeToString(raw) != f.text {
			return fmt.Errorf("entropy: proof: %s is not lower-case hex", f.name)
		}
		*f.dst = raw
	}
	if out.Size < 0 {
		return errors.New("entropy: proof: negative size")
	}
	*p = out
	return nil
}
