package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/drandsource"
	"github.com/provenrand/entropy/draw"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/internal/evidence"
	"github.com/provenrand/entropy/internal/names"
	"github.com/provenrand/entropy/journal"
)

func init() {
	register(&command{
		name:    "draw",
		usage:   "draw (--pick K --of N | --shuffle N | --int N) [--entrants FILE] [--event NAME] [--journal FILE|postgres://URL] [--transcript FILE] [--allow-fallback] [--url U] [--public-key B64] [--rate R] [--burst B] [--fleet redis://…]",
		summary: "draw k of n, a shuffle or an integer from verifiable entropy, with a replayable transcript",
		run:     runDraw,
	})
	register(&command{
		name:    "verify",
		usage:   "verify [--allow-fallback] [--entrants FILE] [--public-key B64] [--chain NAME|FILE|JSON] [--url U] TRANSCRIPT",
		summary: "replay a draw transcript (and, with --url, check its entropy against the service's jobs)",
		run:     runVerify,
	})
	register(&command{
		name:    "rfc3797",
		usage:   "rfc3797 --pool N --count K SOURCE...",
		summary: "RFC 3797 publicly verifiable selection of K of a pool of N from published random sources",
		run:     runRFC3797,
	})
	register(&command{
		name:    "audit",
		usage:   "audit [--head HEX] JOURNAL (a file or a postgres:// URL; or --journal JOURNAL)",
		summary: "verify a journal's hash chain and summarise what it records",
		run:     runAudit,
	})
}

// parseArgs parses flags and positional arguments in any order into fs and
// returns the positional ones. It prints help and errors like parseFlags.
func parseArgs(c *command, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (pos []string, code int, done bool) {
	for {
		err := fs.Parse(args)
		switch {
		case errors.Is(err, flag.ErrHelp):
			code, done = parseFlags(c, fs, []string{"--help"}, stdout, stderr)
			return nil, code, done
		case err != nil:
			fmt.Fprintf(stderr, "entropy %s: %v (see entropy %s --help)\n", c.name, err, c.name)
			return nil, exitUsage, true
		}
		if fs.NArg() == 0 {
			return pos, 0, false
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// intRange is the range of draw --int N, as its errors state it.
var intRange = fmt.Sprintf("N must be a whole number from 1 to %d (the draw is one integer from 0 to N-1)", uint64(math.MaxUint64))

// runDraw is the draw command.
func runDraw(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := commands["draw"]
	fs := newFlagSet(c)
	k := intFlag(fs, "pick", 0, "draw `K` distinct numbers ...")
	n := intFlag(fs, "of", 0, "... of the numbers 1 to `N`")
	shuffleN := intFlag(fs, "shuffle", 0, "shuffle `N` items (prints positions 1 to N)")
	intBound := uint64Flag(fs, "int", 0, "draw one integer in 0 to `N`-1 (1 ≤ N ≤ 18446744073709551615)", intRange)
	event := fs.String("event", "", "draw for the named `event`: once, ever (needs --journal, which keeps the draw across runs)")
	journalPath := addJournalFlag(fs)
	transcriptPath := fs.String("transcript", "", "write the transcript to `file` (must not exist; \"-\" or empty: stdout), whole or not at all: it is written beside file and takes its name only once complete")
	allowFallback := fs.Bool("allow-fallback", false, "accept local fallback entropy (--policy degrade, which this flag makes the default); the transcript then says NOT VERIFIABLE")
	afterFlag := fs.String("after", "", "with --source drand: commit to the chain's first round after `TIME` (RFC 3339, or \"now\"), print the commitment before that round exists, and draw from it")
	entrantsPath := fs.String("entrants", "", "draw from the entrants of `file`, one a line, each once: the transcript commits to the list (SHA-256 and count) and the winners are printed by name; N is the count (--of may be left out); at most "+entrantsBounds)
	var sf sourceFlags
	sf.add(fs)
	pol := fs.Lookup("policy")
	_ = pol.Value.Set("defer")
	pol.DefValue = "defer"
	if code, done := parseFlags(c, fs, args, stdout, stderr); done {
		return code
	}

	eventGiven := false
	fs.Visit(func(f *flag.Flag) { eventGiven = eventGiven || f.Name == "event" })
	if eventGiven && strings.TrimSpace(*event) == "" {
		// An unset variable in a script must not turn "once, ever" into a re-roll.
		return usageError(stderr, c, errors.New("--event is empty: name the event, or leave the flag out for a one-off draw"))
	}
	if *event != "" {
		// The names ReadFor refuses, refused as a bad command line, before
		// anything is opened or drawn.
		if len(*event) > names.MaxEvent {
			return usageError(stderr, c, fmt.Errorf("--event: %d bytes, more than %d", len(*event), names.MaxEvent))
		}
		if err := names.Check(*event); err != nil {
			return usageError(stderr, c, fmt.Errorf("--event: %w", err))
		}
		if *journalPath == "" {
			// Every run is a process of its own: without a journal nothing
			// remembers the event's draw, and running the command again
			// would silently draw the event anew, a re-roll.
			return usageError(stderr, c, errors.New("--event needs --journal: without one the event's draw is not kept, and running the command again would draw it anew"))
		}
	}

	given := setFlags(fs)
	var entrants []string
	if *entrantsPath != "" {
		f, err := os.Open(*entrantsPath)
		if err != nil {
			return fail(stderr, c, fmt.Errorf("--entrants: %w", err))
		}
		entrants, err = readEntrants(f)
		f.Close()
		if err == nil {
			_, err = draw.CommitEntrants(entrants)
		}
		if err == nil {
			err = uniqueEntrants(entrants)
		}
		if err != nil {
			return usageError(stderr, c, fmt.Errorf("--entrants %s: %w", *entrantsPath, err))
		}
		if given["pick"] && !given["of"] {
			*n = len(entrants)
		}
	}
	var intN *uint64
	if given["int"] {
		if *intBound == 0 {
			return usageError(stderr, c, errors.New("--int 0: "+intRange))
		}
		intN = intBound
	}
	kinds := 0
	for _, set := range []bool{given["pick"] || given["of"], given["shuffle"], given["int"]} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds != 1:
		return usageError(stderr, c, errors.New("give one of --pick K --of N, --shuffle N or --int N"))
	case given["pick"] && !given["of"] && entrants == nil:
		return usageError(stderr, c, fmt.Errorf("--pick %d needs --of N (or --entrants FILE, whose count is N)", *k))
	case given["of"] && !given["pick"]:
		return usageError(stderr, c, fmt.Errorf("--of %d needs --pick K", *n))
	case (given["pick"] || given["of"]) && (*k < 1 || *n < 1 || *k > *n || *k > draw.MaxItems):
		return usageError(stderr, c, fmt.Errorf("--pick %d --of %d: need 1 ≤ K ≤ N and K ≤ %d", *k, *n, draw.MaxItems))
	case given["shuffle"] && (*shuffleN < 1 || *shuffleN > draw.MaxItems):
		return usageError(stderr, c, fmt.Errorf("--shuffle %d: need 1 ≤ N ≤ %d", *shuffleN, draw.MaxItems))
	case entrants != nil && ((given["pick"] && *n != len(entrants)) || (given["shuffle"] && *shuffleN != len(entrants)) || (intN != nil && *intN != uint64(len(entrants)))):
		return usageError(stderr, c, fmt.Errorf("--entrants %s holds %d entrants: N must be that count", *entrantsPath, len(entrants)))
	}

	var commit *draw.Commitment
	if given["allow-fallback"] && !given["after"] {
		// Only degrade ever serves fallback entropy: under defer the draw
		// waits out --timeout and fails, under fail it fails at once. Asked
		// for without a policy, fallback entropy means degrade; with
		// another policy given, the flag would do nothing.
		if !given["policy"] {
			sf.policy = "degrade"
		}
		if pol, err := parsePolicy(sf.policy); err == nil && pol != entropy.Degrade {
			return usageError(stderr, c, fmt.Errorf("--allow-fallback has no effect with --policy %s: only degrade serves fallback entropy; add --policy degrade, or leave --allow-fallback out", pol))
		}
	}
	var round *drandsource.RoundEntropy
	if given["after"] {
		var err error
		if commit, round, err = sf.commitAfter(*afterFlag, time.Now()); err == nil && *event != "" {
			err = errors.New("--after with --event: a committed draw is its own commitment (run it once, and publish its transcript)")
		} else if err == nil && *journalPath != "" {
			err = errors.New("--after with --journal: a committed draw takes nothing from the pool, and its transcript is its record")
		}
		for _, name := range []string{"policy", "rate", "burst", "fleet", "fleet-name", "fleet-size", "allow-fallback"} {
			if err == nil && given[name] {
				// No Provider is opened: nothing for them to act on.
				err = fmt.Errorf("--%s has no effect with --after: a committed draw takes its round straight from the relays, with no fallback; leave --%s out", name, name)
			}
		}
		if err != nil {
			return usageError(stderr, c, err)
		}
		// The commitment fixes the draw too: its kind, k and n, and the
		// list of entrants, so that none can change once the round is known.
		var list *draw.Entrants
		if entrants != nil {
			e, _ := draw.CommitEntrants(entrants) // checked above
			list = &e
		}
		switch {
		case *shuffleN != 0:
			*commit = commit.For(draw.KindShuffle, draw.Inputs{N: uint64(*shuffleN)}, list)
		case intN != nil:
			*commit = commit.For(draw.KindInt, draw.Inputs{N: *intN}, list)
		default:
			*commit = commit.For(draw.KindPick, draw.Inputs{N: uint64(*n), K: uint64(*k)}, list)
		}
	}

	// Claim the transcript file before drawing, so a draw is never lost to
	// a file that cannot be written: the name must be free, and the
	// temporary file the transcript is written to, beside it, is created
	// now. The transcript takes the name only once it is whole (see
	// pendingFile); every return before that removes the temporary file.
	var tf *pendingFile
	if *transcriptPath != "" && *transcriptPath != "-" {
		f, err := createPending(*transcriptPath)
		if err != nil {
			return fail(stderr, c, fmt.Errorf("transcript: %w", err))
		}
		tf = f
		defer tf.abort()
	}
	removeTranscript := tf.abort

	var popts []entropy.Option
	if *journalPath != "" {
		j, err := openJournal(ctx, *journalPath)
		if err != nil {
			removeTranscript()
			return fail(stderr, c, err)
		}
		defer j.close()
		popts = append(popts, entropy.WithJournal(j.Journal))
	}
	var p *provider
	var src draw.Entropy
	timeout := sf.timeout
	if commit != nil {
		// Printed before the round exists: whoever reads it knows which
		// round the draw will use before anyone knows its randomness.
		due := round.Due()
		fmt.Fprintf(stderr, "commitment: round %d of drand chain %s, the first after %s, due %s, for the draw %s\n",
			commit.Round, commit.Chain, commit.After.Format(time.RFC3339Nano), due.UTC().Format(time.RFC3339), commit.Params)
		if wait := time.Until(due); wait > 0 {
			timeout += wait
		}
		src = round
	} else {
		var err error
		if p, err = sf.open(draw.SeedSize, popts...); err != nil {
			removeTranscript()
			return fail(stderr, c, err)
		}
		defer p.Close()
		src = p
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if p != nil && *event == "" {
		if err := waitPool(ctx, p.Provider, draw.SeedSize, p.policy); errors.Is(err, context.Canceled) || p.hopeless(err) {
			removeTranscript()
			return fail(stderr, c, err)
		}
	}
	var dopts []draw.Option
	if *allowFallback {
		dopts = append(dopts, draw.AllowFallback())
	}
	if *event != "" {
		dopts = append(dopts, draw.ForEvent(*event))
	}
	if entrants != nil {
		dopts = append(dopts, draw.WithEntrants(entrants))
	}
	if commit != nil {
		dopts = append(dopts, draw.WithCommitment(*commit))
	}

	var t *draw.Transcript
	var err error
	switch {
	case *shuffleN != 0:
		_, t, err = draw.Shuffle(ctx, src, *shuffleN, dopts...)
	case intN != nil:
		_, t, err = draw.Int(ctx, src, *intN, dopts...)
	default:
		_, t, err = draw.Pick(ctx, src, *k, *n, dopts...)
	}
	if err != nil {
		removeTranscript()
		if p != nil {
			err = p.withCause(err)
		}
		return fail(stderr, c, err)
	}
	line := resultLine(t)
	js, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fail(stderr, c, err)
	}
	js = append(js, '\n')
	if tf != nil {
		if err := tf.commit(js); err != nil {
			// The draw is made: running the command again would make
			// another. Keep the result where it can still go; commit left
			// no partial transcript behind for anyone to trust.
			fmt.Fprintf(stderr, "entropy draw: transcript %s: %v\nthe draw was made: %s\nits transcript follows:\n", shown(*transcriptPath), err, line)
			_, _ = stderr.Write(js)
			return exitError
		}
	}
	// The draw is made: a result that cannot be written must not exit 0
	// (running the command again would make another draw), and it goes to
	// stderr so that it is not lost.
	// With no transcript file, stdout carries the transcript alone, so that
	// "entropy draw ... | entropy verify -" checks it; the lines for a
	// person go to stderr. With --transcript FILE they go to stdout.
	out := &errWriter{w: stdout}
	var human io.Writer = out
	if tf == nil {
		human = stderr
	}
	if !t.Verifiable {
		if tf != nil {
			fmt.Fprintf(out, "WARNING: %s\n", t.Warning)
		}
		fmt.Fprintf(stderr, "entropy draw: warning: %s\n", t.Warning)
	}
	fmt.Fprintln(human, line)
	if entrants != nil {
		if names, err := draw.VerifyEntrants(t, entrants); err == nil {
			fmt.Fprintf(human, "entrants: %d, sha256 %s\nwinners: %s\n", t.Entrants.Count, t.Entrants.SHA256, quoteNames(names))
		}
	}
	if t.Event != "" {
		fmt.Fprintf(human, "event: %s\n", shown(t.Event))
	}
	if t.Commitment != nil {
		fmt.Fprintf(human, "commitment: round %d of drand chain %s, the first after %s, for the draw %s\n", t.Commitment.Round, t.Commitment.Chain, t.Commitment.After.Format(time.RFC3339Nano), t.Commitment.Params)
	}
	fmt.Fprintf(human, "entropy: %s %s\n", t.Entropy, t.Label)
	if tf != nil {
		fmt.Fprintf(out, "transcript: %s (check it with: entropy verify %s)\n", shown(*transcriptPath), shown(*transcriptPath))
	} else {
		fmt.Fprintln(stderr, "transcript: on stdout (check it with: entropy draw ... | entropy verify -)")
		_, _ = out.Write(js)
	}
	if out.err != nil {
		fmt.Fprintf(stderr, "entropy draw: cannot write the result: %v\nthe draw was made: %s\n", out.err, line)
		if tf == nil {
			_, _ = stderr.Write(js)
		}
		return exitError
	}
	if p != nil && *journalPath != "" {
		return journalKept(stderr, c, p, journalName(*journalPath))
	}
	return exitOK
}

// commitAfter reads --after (RFC 3339, or "now" for now) for a draw from
// the one drand chain --source names, and returns the commitment to its
// first round after that time and the round's entropy.
func (f *sourceFlags) commitAfter(text string, now time.Time) (*draw.Commitment, *drandsource.RoundEntropy, error) {
	at := now
	if text = strings.TrimSpace(text); text != "now" {
		var err error
		if at, err = time.Parse(time.RFC3339Nano, text); err != nil {
			return nil, nil, fmt.Errorf("--after %q: want an RFC 3339 time (2026-12-05T20:00:00Z) or now", text)
		}
	}
	names, err := parseSources(f.sources)
	if err != nil {
		return nil, nil, err
	}
	if len(names) != 1 || !strings.HasPrefix(names[0], "drand:") {
		return nil, nil, errors.New("--after needs --source drand (one drand chain, alone): the draw commits to one of its rounds")
	}
	if err := f.checkUnused(names); err != nil {
		return nil, nil, err
	}
	src, err := f.drandSource(names[0])
	if err != nil {
		return nil, nil, err
	}
	c := draw.CommitAfter(src.Chain(), at)
	return &c, src.Committed(c.Round), nil
}

// journalKept closes the Provider, which writes the journal records still
// queued (retrying a failed write for a few seconds), and reports on stderr
// the journal's failed writes (Stats.JournalErrors) and the records it did
// not keep (Stats.JournalLost). name is the journal as it may be shown (a
// database URL without its password). It returns exitError if a record the
// command was asked to keep was not kept.
func journalKept(stderr io.Writer, c *command, p *provider, name string) int {
	_ = p.Provider.Close()
	st := p.Stats()
	switch {
	case st.JournalLost > 0:
		fmt.Fprintf(stderr, "entropy %s: journal %q did not keep %d of the records it was asked to keep (%d failed writes): the result stands, but the audit trail lacks them; check the disk that holds the journal\n",
			c.name, name, st.JournalLost, st.JournalErrors)
		return exitError
	case st.JournalErrors > 0:
		fmt.Fprintf(stderr, "entropy %s: warning: journal %q: %d failed writes, retried until every record was kept\n", c.name, name, st.JournalErrors)
	}
	return exitOK
}

// errWriter writes to w until a write fails, and keeps the first error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}

// runVerify is the verify command.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := commands["verify"]
	fs := newFlagSet(c)
	allowFallback := fs.Bool("allow-fallback", false, "exit 0 for a consistent transcript of fallback entropy (it is still reported NOT VERIFIABLE)")
	url := fs.String("url", "", "base `URL` of the service: check the entropy against its jobs (GET /v1/jobs/{id}) and their signatures")
	pub := fs.String("public-key", os.Getenv("ENTROPY_PUBLIC_KEY"), "the service's Ed25519 public key, `base64` (env ENTROPY_PUBLIC_KEY); needed with --url")
	name := fs.String("source-name", os.Getenv("ENTROPY_SOURCE_NAME"), "the service's `name` in labels, as the draw had it (env ENTROPY_SOURCE_NAME; default: the host:port of --url, as draw and read name it; offline, every source of the reference protocol in the transcript)")
	entrantsFile := fs.String("entrants", "", "the list of entrants in `file`, one a line, that the draw committed to: checked against the transcript, and the winners printed by name; at most "+entrantsBounds)
	chainFlag := fs.String("chain", "", "drand chain to trust: quicknet, default, a chain hash, or its info JSON (as relays publish it), inline or in a `file`; default: the pinned quicknet and default chains")
	pos, code, done := parseArgs(c, fs, args, stdout, stderr)
	if done {
		return code
	}
	if len(pos) != 1 {
		return usageError(stderr, c, errors.New("give one TRANSCRIPT file (\"-\" for stdin)"))
	}
	if *url != "" && strings.TrimSpace(*pub) == "" {
		return usageError(stderr, c, errors.New("--public-key is missing: checking the jobs at --url needs the service's public key (or ENTROPY_PUBLIC_KEY)"))
	}
	if setFlags(fs)["source-name"] && *url == "" && strings.TrimSpace(*pub) == "" {
		return usageError(stderr, c, errors.New("--source-name has no effect without --url or --public-key (or ENTROPY_PUBLIC_KEY): it names the service whose jobs or key check the transcript"))
	}
	// The service, if any, is checked before the transcript is read, so
	// that a bad --url is reported as such.
	var src *httpsource.Source
	if *url != "" {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(*pub))
		if err != nil || len(raw) != ed25519.PublicKeySize {
			return usageError(stderr, c, fmt.Errorf("--public-key must be %d bytes of standard base64", ed25519.PublicKeySize))
		}
		hopts := []httpsource.Option{httpsource.WithPublicKey(raw), httpsource.WithAPIKey(os.Getenv("ENTROPY_API_KEY")),
			httpsource.WithName(serviceName(*name, *url))}
		if src, err = httpsource.New(*url, hopts...); err != nil {
			return fail(stderr, c, err)
		}
	}
	var r io.Reader = os.Stdin
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return fail(stderr, c, err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, draw.MaxTranscriptSize+1))
	if err != nil {
		return fail(stderr, c, err)
	}
	t, err := draw.ParseTranscript(b)
	if err != nil {
		return fail(stderr, c, err)
	}
	if err := draw.Verify(t); err != nil {
		return fail(stderr, c, err)
	}
	// Every line of the report waits in report until every check has
	// passed, so that a verify that fails prints no "OK" line (replay OK,
	// entrants OK, origin OK) before its error, which a reader, or a
	// script grepping stdout, could take for the verdict.
	var report strings.Builder
	what := fmt.Sprintf("%s n=%d", t.Kind, t.Inputs.N)
	if t.Kind == draw.KindPick {
		what = fmt.Sprintf("pick k=%d n=%d", t.Inputs.K, t.Inputs.N)
	}
	fmt.Fprintf(&report, "replay OK: %s %s/%d, %d outputs from %s\n", what, t.Algorithm, t.Version, len(t.Outputs), t.Label)
	fmt.Fprintln(&report, resultLine(t)) // as draw printed it
	// The list first: a fallback draw accepted with --allow-fallback still
	// has its entrants checked.
	if *entrantsFile != "" {
		f, err := os.Open(*entrantsFile)
		if err != nil {
			return fail(stderr, c, fmt.Errorf("--entrants: %w", err))
		}
		list, err := readEntrants(f)
		f.Close()
		if err != nil {
			return fail(stderr, c, fmt.Errorf("--entrants %s: %w", *entrantsFile, err))
		}
		names, err := draw.VerifyEntrants(t, list)
		if err != nil {
			return fail(stderr, c, err)
		}
		fmt.Fprintf(&report, "entrants OK: the list of %d (sha256 %s) is the one the draw committed to\nwinners: %s\n", t.Entrants.Count, t.Entrants.SHA256, quoteNames(names))
	} else if t.Entrants != nil {
		fmt.Fprintf(&report, "entrants not checked: the draw committed to %d entrants (sha256 %s); give --entrants FILE\n", t.Entrants.Count, t.Entrants.SHA256)
	}
	if !t.Verifiable {
		// Consistent, and its list checked: the report stands, with the
		// warning that the entropy is not verifiable.
		fmt.Fprintf(&report, "WARNING: %s\n", t.Warning)
		fmt.Fprint(stdout, report.String())
		if !*allowFallback {
			fmt.Fprintf(stderr, "entropy verify: transcript is consistent but NOT VERIFIABLE (fallback entropy); --allow-fallback to accept\n")
			return exitError
		}
		return exitOK
	}
	// Offline: the proofs the transcript carries, under the trust roots.
	roots, err := trustRoots(t, *pub, *name, *chainFlag)
	if err != nil {
		return usageError(stderr, c, err)
	}
	rep, err := draw.Check(t, roots)
	if err != nil {
		return fail(stderr, c, err)
	}
	for _, line := range rep.Checks[2:] { // replay and digest: said above
		fmt.Fprintf(&report, "checked: %s\n", line)
	}
	for _, line := range rep.Unchecked {
		fmt.Fprintf(&report, "not checked: %s\n", line)
	}
	if rep.OriginChecked {
		fmt.Fprintln(&report, "origin OK: every byte of the seed checked offline against the signed proofs, under the trust roots")
	} else {
		fmt.Fprintln(&report, "origin NOT checked offline")
	}
	if *url == "" {
		if !rep.OriginChecked {
			fmt.Fprintln(&report, "entropy not checked against the service (give --public-key or --chain for the proofs, or --url and --public-key to check the jobs)")
		}
		fmt.Fprint(stdout, report.String())
		return exitOK
	}
	jobs := func(ctx context.Context, source, id string) ([]byte, error) {
		if source != src.Name() {
			return nil, fmt.Errorf("the label names source %q, and the service at --url is named %q (give --source-name %q if it is that service)", source, src.Name(), source)
		}
		j, err := src.Job(ctx, id)
		if err != nil {
			return nil, err
		}
		if j.Status != httpsource.StatusCompleted || !j.Verified {
			return nil, fmt.Errorf("job %q is %s, signature verified: %v", id, j.Status, j.Verified)
		}
		return j.Data, nil
	}
	if err := draw.VerifyEntropy(ctx, t, jobs); err != nil {
		return fail(stderr, c, err)
	}
	fmt.Fprintf(&report, "entropy OK: matches the signed jobs of %s\n", shown(src.Name()))
	fmt.Fprint(stdout, report.String())
	return exitOK
}

// runRFC3797 is the rfc3797 command.
func runRFC3797(_ context.Context, args []string, stdout, stderr io.Writer) int {
	c := commands["rfc3797"]
	fs := newFlagSet(c)
	pool := intFlag(fs, "pool", 0, "size `N` of the pool, numbered 1 to N (at most 65535)")
	count := intFlag(fs, "count", 0, "number `K` of members to select")
	pos, code, done := parseArgs(c, fs, args, stdout, stderr)
	if done {
		return code
	}
	if len(pos) == 0 {
		return usageError(stderr, c, errors.New("give the published value of each random source as one argument, e.g. \"2 5 12 8 10\""))
	}
	key, err := draw.RFC3797Key(pos)
	if err != nil {
		return usageError(stderr, c, err)
	}
	sel, err := draw.RFC3797(pos, *pool, *count)
	if err != nil {
		return usageError(stderr, c, err)
	}
	s := make([]string, len(sel))
	for i, v := range sel {
		s[i] = fmt.Sprint(v)
	}
	fmt.Fprintf(stdout, "key: %s\nselected (pool positions 1..%d, in selection order): %s\n", key, *pool, strings.Join(s, " "))
	return exitOK
}

// runAudit is the audit command.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := commands["audit"]
	fs := newFlagSet(c)
	head := fs.String("head", "", "the journal head `hash` published earlier: detects records cut off the end or rewritten since (a journal grown since passes, and audit says by how many records)")
	journalFlag := addJournalFlag(fs)
	pos, code, done := parseArgs(c, fs, args, stdout, stderr)
	if done {
		return code
	}
	if *journalFlag != "" {
		pos = append(pos, *journalFlag)
	}
	if len(pos) != 1 {
		return usageError(stderr, c, errors.New("give one JOURNAL: a file or a postgres:// URL"))
	}
	if err := checkHead(*head); err != nil {
		return usageError(stderr, c, err)
	}
	var rep journal.Report
	var err error
	// findHead looks for the published head among the records, once they
	// have verified.
	var findHead func(string) (uint64, bool, error)
	if isPostgresURL(pos[0]) {
		var j *openedJournal
		if j, err = openJournal(ctx, pos[0]); err == nil {
			defer j.close()
			rep, err = j.verify(ctx)
			findHead = func(h string) (uint64, bool, error) { return j.findHead(ctx, h) }
		}
	} else {
		rep, err = journal.VerifyFile(pos[0])
		findHead = func(h string) (uint64, bool, error) { return journal.FindHead(pos[0], h) }
	}
	if err != nil {
		var le *journal.LineError
		if errors.As(err, &le) && errors.Is(err, journal.ErrTorn) {
			err = fmt.Errorf("%w; the records before it verified (%d); see the journal package documentation before you move the torn bytes out", err, rep.Records)
		}
		return fail(stderr, c, err)
	}
	if rep.Records == 0 {
		// Nothing was checked: an empty journal proves nothing, and a
		// script must not read "OK" into it.
		return fail(stderr, c, fmt.Errorf("%s is empty: no records, nothing to verify", journalName(pos[0])))
	}
	// The published head first: a journal cut back or rewritten since is
	// not OK, and no "journal OK" may reach stdout before that is known.
	var headSeq uint64
	headGrown := *head != "" && !strings.EqualFold(strings.TrimSpace(*head), rep.Head)
	if headGrown {
		seq, ok, err := findHead(*head)
		if err != nil {
			return fail(stderr, c, err)
		}
		if !ok {
			fmt.Fprintf(stderr, "entropy audit: the published head %s is not the hash of any record (the last is %s): records were cut off the end or rewritten\n", shown(*head), rep.Head)
			return exitError
		}
		headSeq = seq
	}
	fmt.Fprintf(stdout, "journal OK: %d records (last seq %d)\n", rep.Records, rep.LastSeq)
	fmt.Fprintf(stdout, "blocks: %d\nfallback episodes: %d (%d bytes served)\nevents: %d", rep.Blocks, rep.Fallbacks, rep.FallbackBytes, rep.Events)
	if len(rep.EventNames) > 0 {
		// Quoted: an event name may hold a newline or ", ", and must not
		// be able to pass for another line of this report. In ASCII: names
		// are compared byte for byte, and two that look alike (a letter
		// and its decomposed form, é and e + U+0301) are two events, which
		// the report must show as two.
		names := make([]string, len(rep.EventNames))
		for i, n := range rep.EventNames {
			names[i] = strconv.QuoteToASCII(n)
		}
		fmt.Fprintf(stdout, " (%s)", strings.Join(names, ", "))
	}
	fmt.Fprintln(stdout)
	if len(rep.Attempts) > 0 {
		// Every request made for an event's job, recorded before it was
		// sent: more attempts than events means jobs were asked for and
		// not used (a failed request, or a retry).
		events := slices.Sorted(maps.Keys(rep.Attempts))
		parts := make([]string, len(events))
		total := 0
		for i, e := range events {
			parts[i] = fmt.Sprintf("%s: %d", strconv.QuoteToASCII(e), rep.Attempts[e])
			total += rep.Attempts[e]
		}
		fmt.Fprintf(stdout, "event requests: %d (%s)\n", total, strings.Join(parts, ", "))
	}
	fmt.Fprintf(stdout, "head: %s\n", rep.Head)
	if headGrown {
		// A head published before later records were added is the hash
		// of one of the records: those up to it are as they were.
		fmt.Fprintf(stdout, "published head: record %d, as it was when published; %d records added since\n", headSeq, rep.LastSeq-headSeq)
	}
	return exitOK
}

// trustRoots builds the trust roots of an offline check from verify's
// flags: the public key (base64) for the source named (or, with no name, for
// every reference-protocol source the transcript's proofs name), and the
// drand chain given, or the pinned chains.
func trustRoots(t *draw.Transcript, pub, name, chain string) (draw.TrustRoots, error) {
	var roots draw.TrustRoots
	if pub = strings.TrimSpace(pub); pub != "" {
		raw, err := base64.StdEncoding.DecodeString(pub)
		if err != nil || len(raw) != ed25519.PublicKeySize {
			return roots, fmt.Errorf("--public-key must be %d bytes of standard base64", ed25519.PublicKeySize)
		}
		roots.PublicKeys = map[string]ed25519.PublicKey{}
		if name != "" {
			roots.PublicKeys[name] = raw
		} else {
			for _, p := range t.Proofs {
				if p.Scheme == evidence.SchemeReferenceV2 || p.Scheme == evidence.SchemeReferenceV1 {
					roots.PublicKeys[p.Source] = raw
				}
			}
		}
	}
	chain = strings.TrimSpace(chain)
	switch {
	case chain == "":
		roots.Chains = []drandsource.ChainInfo{drandsource.Quicknet(), drandsource.Default()}
	case strings.HasPrefix(chain, "{"):
		ci, err := drandsource.ParseChainInfo([]byte(chain))
		if err != nil {
			return roots, fmt.Errorf("--chain: %w", err)
		}
		roots.Chains = []drandsource.ChainInfo{ci}
	default:
		if ci, err := drandsource.Chain(chain); err == nil {
			roots.Chains = []drandsource.ChainInfo{ci}
			break
		}
		b, err := readChainFile(chain)
		if err != nil {
			return roots, fmt.Errorf("--chain %q: not a pinned chain (quicknet, default) nor a readable file: %w", chain, err)
		}
		ci, err := drandsource.ParseChainInfo(b)
		if err != nil {
			return roots, fmt.Errorf("--chain %s: %w", chain, err)
		}
		roots.Chains = []drandsource.ChainInfo{ci}
	}
	return roots, nil
}

// maxChainInfo bounds a --chain file: a chain's info is about 500 bytes, as
// relays serve it (at most 16 KiB from them).
const maxChainInfo = 16 << 10

// readChainFile reads a chain's info from path, at most maxChainInfo bytes:
// a file that never ends (a device, a FIFO) must not take all memory.
func readChainFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxChainInfo+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxChainInfo {
		return nil, fmt.Errorf("larger than %d bytes, which no chain's info is", maxChainInfo)
	}
	return b, nil
}

// quoteNames joins entrants' names, each quoted, so that no name can pass
// for another line or another name.
func quoteNames(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}
