package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/provenrand/entropy/draw"
)

// resultLine is the result of a draw as a person reads it, the same in
// draw and in verify: items are numbered 1 to n (the transcript's outputs
// count from 0, as its "numbering" member says), an integer is shown as
// the value it is, in [0, n).
func resultLine(t *draw.Transcript) string {
	n := t.Inputs.N
	switch t.Kind {
	case draw.KindShuffle:
		return fmt.Sprintf("shuffle of %d: %s (position i holds item; items numbered 1 to %d)", n, oneBased(t.Outputs), n)
	case draw.KindInt:
		if len(t.Outputs) == 1 {
			return fmt.Sprintf("integer in [0, %d): %d", n, t.Outputs[0])
		}
	case draw.KindPick:
		return fmt.Sprintf("pick %d of 1..%d: %s (in draw order)", t.Inputs.K, n, oneBased(t.Outputs))
	}
	return fmt.Sprintf("%s of %d: %s (numbered 1 to %d)", t.Kind, n, oneBased(t.Outputs), n)
}

// oneBased formats 0-based draw outputs as the numbers 1 to n.
func oneBased(v []uint64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatUint(x+1, 10)
	}
	return strings.Join(s, " ")
}
