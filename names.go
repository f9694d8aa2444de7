package entropy

import (
	"errors"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// CheckName reports whether name is acceptable as a job ID, a source name or
// an event name (docs/protocol.md, "Names"): such names travel into labels,
// journals, transcripts and reports that people read, so none may make
// printed text say something else. A name must be valid UTF-8 whose every
// character is printable (unicode.IsPrint: letters, marks, numbers,
// punctuation, symbols and the ASCII space; so no control character, no line
// or paragraph separator, no bidi override or other invisible format
// character, no space but U+0020), and must not be "." or "..". It returns
// nil, or an error saying what is wrong. Lengths are bounded where each kind
// of name is taken ([MaxEventName] for events).
//
// The [Provider] refuses blocks whose source name or job ID fails, [Provider.ReadFor]
// refuses such event names, and the HTTP source and the journal refuse them
// at their boundary.
func CheckName(name string) error {
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
	}
	return nil
}

// printName is name as a summary line shows it: as it is when it is a plain
// word (it passes CheckName and holds no space, quote or backslash), quoted
// with only ASCII otherwise, so that no name can end the line, hide a
// character or pass for other text.
func printName(name string) string {
	if CheckName(name) == nil {
		plain := true
		for _, r := range name {
			if r == ' ' || r == '"' || r == '\\' {
				plain = false
				break
			}
		}
		if plain {
			return name
		}
	}
	return strconv.QuoteToASCII(name)
}

// printText is text for a summary line: as it is when every character is
// printable, quoted with only ASCII otherwise.
func printText(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == utf8.RuneError {
			return strconv.QuoteToASCII(s)
		}
	}
	return s
}
