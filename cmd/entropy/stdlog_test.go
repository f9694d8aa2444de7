package main

import (
	"bytes"
	"log"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestStandardLogWithholdsQuotedBytes: a line that net/http logs through
// the standard log package reaches stderr without the bytes it quotes from
// the network, and without any secret the CLI was given.
func TestStandardLogWithholdsQuotedBytes(t *testing.T) {
	const key = "sk-stdlog-0f1e2d3c"
	var buf bytes.Buffer
	l := &stdLog{w: &buf}
	l.hide(key)
	lg := log.New(l, "", 0)
	lg.Printf("Unsolicited response received on idle HTTP channel starting with %q; err=%v", "HTTP/1.1 200 OK\r\nX-Echo: Bearer "+key, nil)
	lg.Printf("something about %s without quotes", key)
	out := buf.String()
	assert.NotContains(t, out, key)
	assert.NotContains(t, out, "X-Echo")
	assert.Contains(t, out, "entropy: Unsolicited response received on idle HTTP channel starting with [the rest withheld")
	assert.Contains(t, out, "something about [REDACTED] without quotes")
	assert.Equal(t, 2, bytes.Count(buf.Bytes(), []byte("\n")))
}
