// Package names holds the rule for the names that travel into labels,
// journals, transcripts and reports: job IDs, source names and event names.
package names

import (
	"errors"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// MaxEvent is the longest event name entropy's Provider.ReadFor takes, in
// bytes.
const MaxEvent = 1024

// Check reports whether name is acceptable as a job ID, a source name or
// an event name (docs/protocol.md, "Names"): such names travel into labels,
// journals, transcripts and reports that people read, so none may make
// printed text say something else. A name must be valid UTF-8 whose every
// character is printable (unicode.IsPrint: letters, marks, numbers,
// punctuation, symbols and the ASCII space; so no control character, no line
// or paragraph separator, no bidi override or other invisible format
// character, no space but U+0020), with none of the printable characters
// that show nothing (Unicode's other default-ignorable code points and
// variation selectors: U+034F, the Hangul fillers, U+FE0F, ...), so that
// two names that differ only by one cannot print alike, and must not be
// "." or "..". It returns
// nil, or an error saying what is wrong. Lengths are bounded where each kind
// of name is taken (MaxEvent for events).
//
// An entropy.Provider refuses blocks whose source name or job ID fails,
// Provider.ReadFor refuses such event names, and the HTTP source, the
// journals and the command refuse them at their boundary.
func Check(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case name == "." || name == "..":
		return errors.New(strconv.Quote(name) + " is not a name")
	case !utf8.ValidString(name):
		return errors.New(strconv.QuoteToASCII(name) + " is not valid UTF-8")
	}
	for i, r := range name {
		if !unicode.IsPrint(r) {
			return errors.New(strconv.QuoteToASCII(name) + ": character " + strconv.QuoteRuneToASCII(r) + " at byte " + strconv.Itoa(i) + " is not printable")
		}
		if unicode.In(r, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector) {
			return errors.New(strconv.QuoteToASCII(name) + ": character " + strconv.QuoteRuneToASCII(r) + " at byte " + strconv.Itoa(i) + " shows nothing")
		}
	}
	return nil
}
