package strictjson

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestKeys(t *testing.T) {
	for doc, ok := range map[string]bool{
		`{"outputs":[1,2],"label":{"spans":[{"job_id":"a"}]}}`: true,
		`[]`:                            true,
		`{"outputs":[1],"outputs":[2]}`: false, // the second would win
		`{"outputs":[1],"OUTPUTS":[2]}`: false, // matched without case
		`{"label":{"spans":[{"job_id":"a","JOB_ID":"b"}]}}`: false, // nested, in an array
		`{"k":1,"\u212a":2}`:             false, // Kelvin sign folds to k
		`{"a":{"b":1,"b":2}}`:            false,
		`{"a":1} {"a":2}`:                false,
		`{"a":1`:                         false,
		`{"":1}`:                         false,
		`{"n":1,"k":2,"inputs":{"n":3}}`: true, // the same name in two objects
		`{"time":"2026-11-30T00:00:00Z","verifiable":true,"x":null}`: true,
	} {
		err := Keys([]byte(doc))
		if ok {
			assert.NoError(t, err, doc)
		} else {
			assert.Error(t, err, doc)
		}
	}
}
