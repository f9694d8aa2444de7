package journal

import "encoding/json"

// jsonUnmarshal is json.Unmarshal, named for the tests that build records.
func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
