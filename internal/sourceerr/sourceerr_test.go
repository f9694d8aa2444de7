package sourceerr

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Every status of a class is named as its sentinel is, the narrower class
// first (503 is "service unavailable", not "server error"), and a status of
// no class has no name.
func TestStatusTextNamesTheNarrowestClass(t *testing.T) {
	for status, want := range map[int]string{
		400: "bad request", 401: "unauthorized", 402: "payment required", 403: "forbidden",
		404: "not found", 409: "conflict", 422: "validation failed", 425: "too early",
		429: "rate limited", 500: "server error", 503: "service unavailable", 599: "server error",
		200: "", 408: "", 418: "", 600: "",
	} {
		assert.Equal(t, want, StatusText(status), "%d", status)
	}
	assert.True(t, ErrServer.(*StatusClass).MatchStatus(503), "503 is a server error too")
	assert.False(t, ErrServiceUnavailable.(*StatusClass).MatchStatus(500))
}
