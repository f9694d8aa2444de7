package journal

import (
	"context"
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
