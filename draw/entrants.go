package draw

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Entrants is a draw's commitment to the list of entrants it draws from
// (docs/draw-spec.md §6, "entrants"): the SHA-256 of the list in its
// canonical form (each entrant's UTF-8 bytes followed by one "\n", in the
// order given) and the number of entrants, which is the draw's n. Output i
// of the draw names entrant i (0-based) of the list. Changing the list after
// the draw changes its hash, and VerifyEntrants refuses it.
type Entrants struct {
	SHA256 string `json:"sha256"` // lower-case hex SHA-256 of the canonical list
	Count  uint64 `json:"count"`
}

// CommitEntrants returns the commitment of a list of entrants. Every entrant
// must be non-empty valid UTF-8 without a line break (a list is one entrant
// a line), and the list must not be empty.
func CommitEntrants(list []string) (Entrants, error) {
	if len(list) == 0 {
		return Entrants{}, fmt.Errorf("%w: no entrants", ErrBadInput)
	}
	h := sha256.New()
	for i, e := range list {
		if e == "" || strings.ContainsAny(e, "\r\n") || !utf8.ValidString(e) {
			return Entrants{}, fmt.Errorf("%w: entrant %d is empty, holds a line break or is not UTF-8", ErrBadInput, i+1)
		}
		h.Write([]byte(e))
		h.Write([]byte{'\n'})
	}
	return Entrants{SHA256: hex.EncodeToString(h.Sum(nil)), Count: uint64(len(list))}, nil
}

// ReadEntrants reads a list of entrants, one a line, as the entropy command's
// --entrants file gives it: a trailing "\r" is dropped from each line, and
// blank lines (empty after that) are skipped.
// A line may hold at most 1 MiB; the list is as long as r, which
// ReadEntrants reads to its end, as io.ReadAll does: bound a reader that is
// not trusted (io.LimitReader), as the entropy command does (at most 64 MiB,
// MaxItems lines and 1024 bytes a line).
func ReadEntrants(r io.Reader) ([]string, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: entrants: nil reader", ErrBadInput)
	}
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := string(bytes.TrimSuffix(sc.Bytes(), []byte("\r")))
		if line != "" {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("draw: entrants: %w", err)
	}
	return out, nil
}

// WithEntrants commits the draw to a list of entrants: its transcript
// carries the list's SHA-256 and count, and the draw's n must be the count
// (pick k of them, shuffle them, or draw one). The list itself stays with
// the caller; publish it with the transcript.
func WithEntrants(list []string) Option {
	return func(c *config) {
		e, err := CommitEntrants(list)
		c.entrants, c.entrantsErr = &e, err
	}
}

// VerifyEntrants checks that list is the list the transcript committed to
// (ErrInvalid otherwise, or for a transcript that committed to none), and
// returns the entrants its outputs name, in output order.
func VerifyEntrants(t *Transcript, list []string) ([]string, error) {
	if t == nil || t.Entrants == nil {
		return nil, fmt.Errorf("%w: the transcript commits to no list of entrants", ErrInvalid)
	}
	e, err := CommitEntrants(list)
	if err != nil {
		return nil, err
	}
	if e != *t.Entrants {
		return nil, fmt.Errorf("%w: the list of entrants (%d, sha256 %s) is not the one the draw committed to (%d, sha256 %s)", ErrInvalid, e.Count, e.SHA256, t.Entrants.Count, t.Entrants.SHA256)
	}
	names := make([]string, len(t.Outputs))
	for i, o := range t.Outputs {
		if o >= uint64(len(list)) {
			return nil, fmt.Errorf("%w: output %d is %d, beyond the %d entrants", ErrInvalid, i, o, len(list))
		}
		names[i] = list[o]
	}
	return names, nil
}

// checkEntrants checks a transcript's commitment against its inputs.
func checkEntrants(t *Transcript) error {
	if t.Entrants == nil {
		return nil
	}
	sum, err := hex.DecodeString(t.Entrants.SHA256)
	if err != nil || len(sum) != sha256.Size || hex.EncodeToString(sum) != t.Entrants.SHA256 {
		return fmt.Errorf("%w: entrants sha256 is not 32 bytes of lower-case hex", ErrInvalid)
	}
	if t.Entrants.Count != t.Inputs.N {
		return fmt.Errorf("%w: %d entrants, but the draw's n is %d", ErrInvalid, t.Entrants.Count, t.Inputs.N)
	}
	return nil
}
