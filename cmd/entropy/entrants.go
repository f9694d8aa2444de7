package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/provenrand/entropy/draw"
)

// The bounds of an --entrants file (draw and verify): a list is read into
// memory whole, and a file without end (a FIFO, /dev/zero, a log given by
// mistake) must be refused at a bound, not read until memory runs out.
const (
	// maxEntrants is the most lines a list may have, blank ones included:
	// draw.MaxItems, the most items a pick or a shuffle draws from.
	maxEntrants = draw.MaxItems
	// maxEntrantBytes is the longest line, without its line break ("\n"
	// or "\r\n"): an entrant is a name, an e-mail address or an ID.
	maxEntrantBytes = 1024
	// maxEntrantsFile is the largest file.
	maxEntrantsFile = 64 << 20
)

// entrantsBounds states the bounds, as the flags' help gives them.
var entrantsBounds = fmt.Sprintf("%d lines, of at most %d bytes each, and %d MiB", maxEntrants, maxEntrantBytes, maxEntrantsFile>>20)

// uniqueEntrants refuses a list in which an entrant is listed twice, for a
// draw: the winners are printed by name, and "Ada, Ada" cannot say whether
// one entrant holding two tickets won twice or the list was made by
// mistake. An entrant with several tickets lists each under a name of its
// own ("Ada #1", "Ada #2"). Verifying a transcript does not check this: a
// list is what the draw committed to, whatever it holds.
func uniqueEntrants(list []string) error {
	seen := make(map[string]int, len(list))
	for i, e := range list {
		if j, ok := seen[e]; ok {
			return fmt.Errorf("entrant %d (%s) is entrant %d again (blank lines not counted): list each entrant once, and each ticket of an entrant with several under a name of its own", i+1, strconv.Quote(e), j+1)
		}
		seen[e] = i
	}
	return nil
}

// readEntrants reads a list of entrants as draw.ReadEntrants does, from at
// most maxEntrantsFile bytes, maxEntrants lines and maxEntrantBytes a
// line; it stops reading at the first byte past a bound and says which.
func readEntrants(r io.Reader) ([]string, error) {
	b := &boundedLines{r: r}
	list, err := draw.ReadEntrants(b)
	if b.err != nil {
		return nil, b.err
	}
	return list, err
}

// boundedLines reads r, and fails at the first byte past the bounds of an
// entrants file.
type boundedLines struct {
	r     io.Reader
	size  int64 // bytes read
	lines int   // lines begun
	line  int   // bytes of the current line, its "\n" not counted
	cr    bool  // the current line's last byte is "\r"
	err   error // the bound passed, once it is
}

// Read reads from r, checking each byte against the bounds.
func (b *boundedLines) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	for _, c := range p[:n] {
		b.size++
		if b.size > maxEntrantsFile {
			b.err = fmt.Errorf("larger than %d bytes (the most an entrants file may hold)", maxEntrantsFile)
			return 0, b.err
		}
		if b.line == 0 {
			// The first byte of a line, be it only its "\n".
			if b.lines == maxEntrants {
				b.err = fmt.Errorf("more than %d lines (the most entrants a list may hold)", maxEntrants)
				return 0, b.err
			}
			b.lines++
		}
		if c == '\n' {
			if b.err = b.checkLine(); b.err != nil {
				return 0, b.err
			}
			b.line, b.cr = 0, false
			continue
		}
		b.line++
		b.cr = c == '\r'
		if b.line > maxEntrantBytes+1 { // a "\r" that ends it may follow
			b.err = b.checkLine()
			return 0, b.err
		}
	}
	if err == io.EOF {
		if b.err = b.checkLine(); b.err != nil {
			return 0, b.err
		}
	}
	return n, err
}

// checkLine checks the length of the current line, without its line break.
func (b *boundedLines) checkLine() error {
	n := b.line
	if b.cr {
		n--
	}
	if n > maxEntrantBytes {
		return fmt.Errorf("line %d is longer than %d bytes (the longest an entrant may be)", b.lines, maxEntrantBytes)
	}
	return nil
}
