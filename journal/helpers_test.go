package journal

import (
	"context"
	"encoding/hex"
	"encoding/json"

	"github.com/provenrand/entropy"
)

// jsonUnmarshal is json.Unmarshal, named for the tests that build records.
func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// recordEvent is RecordEvent with a background context, for the tests that
// only care whether the record was stored.
func recordEvent(j *Journal, r entropy.EventRecord) error {
	_, err := j.RecordEvent(context.Background(), r)
	return err
}

// AppendBlockUnguarded appends a block record without the replay guard's
// check, as a process written before it did: how the tests make a journal
// that holds one job twice.
func AppendBlockUnguarded(j *Journal, b entropy.BlockRecord) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.append(TypeBlock, BlockData{
		Source: b.Source, JobID: b.JobID, Size: b.Size,
		Digest: hex.EncodeToString(b.Digest[:]), Verifiable: b.Verifiable, Time: b.Time.UTC(),
	})
}
