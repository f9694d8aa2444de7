package entropy

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzProofJSON feeds arbitrary bytes to Proof's UnmarshalJSON. It must not
// panic, and a proof it accepts must encode to JSON that decodes to the same
// proof, and encode again to the same bytes (one spelling per proof: a
// transcript's digest covers it).
func FuzzProofJSON(f *testing.F) {
	f.Add([]byte(`{"scheme":"provenrand/entropy/v2","source":"quantropy","job_id":"job-1","data":"00ff","nonce":"000102030405060708090a0b0c0d0e0f","size":2,"timestamp":"2026-01-02T03:04:05Z","signature":"ab"}`))
	f.Add([]byte(`{"scheme":"drand","source":"drand/default","job_id":"1337","data":"00","signature":"ab","chain":"8990","round":1337,"previous_signature":"cd"}`))
	f.Add([]byte(`{"scheme":"x","source":"s","job_id":"j","data":"","signature":"","SIZE":1}`))
	f.Add([]byte(`{"scheme":"x","source":"s","job_id":"j","data":"AB","signature":""}`))
	f.Add([]byte(`{"scheme":"x","scheme":"y"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Proof
		if err := json.Unmarshal(b, &p); err != nil {
			return
		}
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("an accepted proof does not encode: %v", err)
		}
		var q Proof
		if err := json.Unmarshal(out, &q); err != nil {
			t.Fatalf("a proof's own encoding does not decode: %v (%s)", err, out)
		}
		again, err := json.Marshal(q)
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("encoding changed on a round trip: %s then %s", out, again)
		}
	})
}

// The strict form: an upper-case hex byte, an unknown or repeated member,
// a member in other case, a negative size are refused.
func TestProofJSONIsStrict(t *testing.T) {
	ok := `{"scheme":"drand","source":"s","job_id":"1","data":"00","signature":"ab","chain":"cd","round":1}`
	var p Proof
	if err := json.Unmarshal([]byte(ok), &p); err != nil {
		t.Fatal(err)
	}
	if p.Round != 1 || !bytes.Equal(p.Chain, []byte{0xcd}) || !bytes.Equal(p.Data, []byte{0}) {
		t.Fatalf("decoded %+v", p)
	}
	for _, bad := range []string{
		`{"scheme":"drand","source":"s","job_id":"1","data":"0A","signature":"ab"}`,
		`{"scheme":"drand","source":"s","job_id":"1","data":"00","signature":"ab","extra":1}`,
		`{"scheme":"drand","scheme":"v2","source":"s","job_id":"1","data":"00","signature":"ab"}`,
		`{"Scheme":"drand","source":"s","job_id":"1","data":"00","signature":"ab"}`,
		`{"scheme":"v2","source":"s","job_id":"1","data":"00","signature":"ab","size":-1}`,
		`{"scheme":"v2","source":"s","job_id":"1","data":"0","signature":"ab"}`,
	} {
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
