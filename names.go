package entropy

import (
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/provenrand/entropy/internal/names"
)

// checkName is names.Check: whether name is acceptable as a job ID, a
// source name or an event name (docs/protocol.md, "Names").
var checkName = names.Check

// printName is name as a summary line shows it: as it is when it is a plain
// word (it passes checkName and holds no space, quote or backslash), quoted
// with only ASCII otherwise, so that no name can end the line, hide a
// character or pass for other text.
func printName(name string) string {
	if checkName(name) == nil {
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
