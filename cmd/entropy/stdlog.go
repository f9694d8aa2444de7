package main

import (
	"io"
	"strings"
	"sync"
)

// stdLog is what the CLI gives the standard log package as its output.
// The CLI itself never logs through it, but net/http does, and its lines can
// quote bytes that a service sent ("Unsolicited response received on idle
// HTTP channel starting with ..."), which may echo the API key. So each line
// is cut where its first quoted part starts, the rest withheld, and every
// secret the CLI was given removed from what is left.
type stdLog struct {
	mu      sync.Mutex
	w       io.Writer
	secrets []string
}

// logSink is the standard log's output once main has installed it.
var logSink = &stdLog{}

// hide adds a secret that no log line may show.
func (l *stdLog) hide(secret string) {
	if secret == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.secrets = append(l.secrets, secret)
}

// Write writes one log line to w, quoted parts withheld and secrets removed.
func (l *stdLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil {
		return len(p), nil
	}
	line := strings.TrimRight(string(p), "\n")
	if i := strings.IndexAny(line, "\"'`"); i >= 0 {
		line = line[:i] + "[the rest withheld: it quotes bytes from the network, which may hold a secret]"
	}
	for _, s := range l.secrets {
		line = strings.ReplaceAll(line, s, "[REDACTED]")
	}
	if _, err := io.WriteString(l.w, "entropy: "+line+"\n"); err != nil {
		return 0, err
	}
	return len(p), nil
}
