package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/internal/names"
)

// flagError is a bad command line found after parsing (a flag value out of
// range, flags that do not go together): the command exits with exitUsage,
// as for a flag the parser refused, not with exitError, which is for
// failures at run time.
type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

// badFlag marks err as a bad command line (exit status 2).
func badFlag(err error) error {
	if err == nil {
		return nil
	}
	return &flagError{err: err}
}

// badFlagf is badFlag(fmt.Errorf(format, args...)).
func badFlagf(format string, args ...any) error { return badFlag(fmt.Errorf(format, args...)) }

// oneLine is err's message on one line, without the "entropy: " prefix of
// the library's errors: the command's own prefix ("entropy read: ") says
// where it comes from already.
//
// Every character that is not printable (a control character, a bidi
// override, an invisible format character) is shown escaped, as \u202e: an
// error can quote what a service, a transcript or a journal holds, and must
// not be able to hide text or pass for another line.
func oneLine(err error) string {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	msg = strings.TrimPrefix(msg, "entropy: ")
	// A library error wrapped by another package's keeps its own prefix
	// ("draw: read entropy: entropy: …"): one is enough.
	msg = strings.ReplaceAll(msg, ": entropy: ", ": ")
	if strings.IndexFunc(msg, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return msg
	}
	var sb strings.Builder
	for _, r := range msg {
		if unicode.IsPrint(r) {
			sb.WriteRune(r)
			continue
		}
		q := strconv.QuoteRuneToASCII(r)
		sb.WriteString(q[1 : len(q)-1])
	}
	return sb.String()
}

// shown is a name or path as a line of output shows it: as it is when it is
// a plain word (a name names.Check accepts, without space, quote or
// backslash), quoted with only ASCII otherwise, so that what a transcript,
// a journal, a service or a flag holds can never end the line, hide a
// character or pass for another line of the report (docs/protocol.md,
// "Names").
func shown(s string) string {
	if names.Check(s) == nil && !strings.ContainsAny(s, " \"\\") {
		return s
	}
	return strconv.QuoteToASCII(s)
}

// exitCode is the exit status of a command that ends with err: exitUsage
// for a bad command line, exitError for anything else.
func exitCode(err error) int {
	var fe *flagError
	if errors.As(err, &fe) {
		return exitUsage
	}
	return exitError
}

// failWith prints "entropy <cmd>: err" as one line and returns the exit
// status err calls for (exitUsage for a bad flag, with a pointer to --help).
func failWith(stderr io.Writer, c *command, err error) int {
	msg := unprefixed(c.name, oneLine(err))
	if errors.Is(err, context.Canceled) {
		// The command's context ends only on SIGINT or SIGTERM: say so,
		// rather than leave "context canceled" deep in a library's words.
		msg = "interrupted before it finished: " + msg
	}
	if exitCode(err) == exitUsage {
		fmt.Fprintf(stderr, "entropy %s: %s (see entropy %s --help)\n", c.name, msg, c.name)
		return exitUsage
	}
	fmt.Fprintf(stderr, "entropy %s: %s\n", c.name, msg)
	return exitError
}

// unprefixed drops from msg the prefixes that repeat the "entropy NAME: "
// before it: the command's name ("sim: " under sim) and the package the
// command is built on ("draw: " under draw, verify and rfc3797), so that
// "entropy rfc3797: draw: rfc3797: no sources" reads "entropy rfc3797: no
// sources".
func unprefixed(name, msg string) string {
	pkg := map[string]string{"draw": "draw: ", "verify": "draw: ", "rfc3797": "draw: ", "sim": "sim: ", "audit": "journal: "}[name]
	for {
		switch {
		case strings.HasPrefix(msg, name+": "):
			msg = msg[len(name)+2:]
		case pkg != "" && strings.HasPrefix(msg, pkg):
			msg = msg[len(pkg):]
		default:
			return msg
		}
	}
}

// withCause adds the sources' last errors to a timeout: "context deadline
// exceeded" alone does not say that the relay's name did not resolve.
func (p *provider) withCause(err error) error {
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var causes []string
	for _, s := range p.Stats().Sources {
		if s.LastError != nil {
			causes = append(causes, oneLine(s.LastError))
		}
	}
	if len(causes) == 0 {
		return fmt.Errorf("no verifiable entropy before --timeout: %w", err)
	}
	return fmt.Errorf("no verifiable entropy before --timeout (%w); last source error: %s", err, strings.Join(causes, "; "))
}

// setFlags reports which flags of fs the command line set.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// checkHead checks audit --head: empty, or the hex SHA-256 of a journal's
// last line (64 hex digits), as the journal reports it.
func checkHead(h string) error {
	h = strings.TrimSpace(h)
	if h == "" {
		return nil
	}
	if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("--head %q: want the journal head published earlier, %d hex digits", h, 2*sha256.Size)
	}
	return nil
}

// serviceName is the name labels give the service at baseURL: the name
// given (--source-name, ENTROPY_SOURCE_NAME), else the URL's host:port.
// A name that follows from the service's address is the same in the
// command that draws and in the one that verifies, and never names
// another service (a default like "quantropy" would name every service so).
func serviceName(given, baseURL string) string {
	if given = strings.TrimSpace(given); given != "" {
		return given
	}
	if u, err := url.Parse(baseURL); err == nil && u.Host != "" {
		return strings.ToLower(u.Host)
	}
	return httpsource.DefaultName
}
