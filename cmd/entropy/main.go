// Command entropy reads verifiable entropy from a service of the reference
// protocol, or from the embedded simulator when none is configured, and runs
// that simulator standalone.
//
//	entropy read -n 32 --label          # 32 bytes as hex, and their label
//	entropy sim --addr 127.0.0.1:8080   # serve the simulator until Ctrl-C
//
// The service comes from --url, --api-key and --public-key or from the
// environment (ENTROPY_URL, ENTROPY_API_KEY, ENTROPY_PUBLIC_KEY). With none,
// the simulator runs in-process and labels name it "simulator", so nobody
// mistakes its bytes for a real service's.
//
// Every command takes --help. Errors are one line on stderr and a non-zero
// exit status.
package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/drandsource"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/sim"
)

// command is one subcommand. Files of this package add theirs from init with
// register.
type command struct {
	name    string // as typed: "read"
	usage   string // synopsis after the program name: "read [-n N] [--format F]"
	summary string // one line for the command list
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands holds every registered command by name.
var commands = map[string]*command{}

// register adds a command; files call it from init.
func register(c *command) { commands[c.name] = c }

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // bad command line
)

func main() {
	// net/http logs through the standard log package, quoting bytes from the
	// network: never let them reach stderr unfiltered (see stdLog).
	logSink.w = os.Stderr
	logSink.hide(os.Getenv("ENTROPY_API_KEY"))
	log.SetFlags(0)
	log.SetOutput(logSink)
	// A closed pipe is output that never arrived, as a full disk is: a
	// write to it returns EPIPE, which the command reports (a draw keeps
	// its result on stderr), rather than killing the process silently.
	signal.Ignore(syscall.SIGPIPE)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line args (without the program name) until it ends or
// SIGINT/SIGTERM arrives, and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, args, stdout, stderr)
}

// runContext is run with the context given: tests cancel it to stop a command.
// A command whose output could not be written to stdout (a full disk, a
// closed pipe) fails, whatever it returned: output that never arrived (an
// audit head, a selection, a verdict) must not pass for success.
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	out := &errWriter{w: stdout}
	code := dispatch(ctx, args, out, stderr)
	if out.err != nil && code == exitOK {
		name := "entropy"
		if len(args) > 0 && commands[args[0]] != nil {
			name += " " + args[0]
		}
		fmt.Fprintf(stderr, "%s: cannot write the output: %s\n", name, oneLine(out.err))
		return exitError
	}
	return code
}

// dispatch runs the command that args name.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		topUsage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return c.run(ctx, []string{"--help"}, stdout, stderr)
			}
			fmt.Fprintf(stderr, "entropy: unknown command %q (see entropy --help)\n", args[1])
			return exitUsage
		}
		topUsage(stdout)
		return exitOK
	case "--version", "-version":
		return runVersion(ctx, args[1:], stdout, stderr)
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "entropy: unknown command %q (see entropy --help)\n", args[0])
		return exitUsage
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

// topUsage prints the list of commands.
func topUsage(w io.Writer) {
	fmt.Fprintln(w, "entropy: verifiable entropy from a remote service, with labels that say where every byte came from.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: entropy <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'entropy <command> --help' for a command's flags.")
	fmt.Fprintln(w, "Without ENTROPY_URL (or --url) the embedded simulator serves, labelled \"simulator\".")
}

// newFlagSet returns a flag set for c whose errors the caller prints.
func newFlagSet(c *command) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses args into fs. On --help it prints c's usage to stdout;
// on a bad flag it prints one line to stderr. done reports that the command
// should return code at once.
func parseFlags(c *command, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stdout, "Usage: entropy %s\n\n%s\n\nFlags:\n", c.usage, c.summary)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
		return exitOK, true
	case err != nil:
		fmt.Fprintf(stderr, "entropy %s: %v (see entropy %s --help)\n", c.name, err, c.name)
		return exitUsage, true
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "entropy %s: unexpected argument %q (see entropy %s --help)\n", c.name, fs.Arg(0), c.name)
		return exitUsage, true
	}
	return 0, false
}

// fail prints "entropy <cmd>: err" as one line and returns exitError, or
// exitUsage when err is a bad command line (badFlag).
func fail(stderr io.Writer, c *command, err error) int { return failWith(stderr, c, err) }

// sourceFlags are the flags that choose the entropy service. Commands that
// read entropy (read, and the draw commands) share them.
type sourceFlags struct {
	url, apiKey, publicKey string
	fetchKey               bool
	allowHTTP              bool
	policy                 string
	timeout                time.Duration
	name                   string // the service's name in labels (--source-name)
	sources                string // comma-separated, in priority order: service, drand[:chain]
	relays                 string // comma-separated drand relay URLs
	fleet                  fleetFlags
	fs                     *flag.FlagSet // the flag set add registered them on
}

// add registers the flags on fs, with defaults from the environment.
func (f *sourceFlags) add(fs *flag.FlagSet) {
	f.fs = fs
	fs.StringVar(&f.url, "url", os.Getenv("ENTROPY_URL"), "base `URL` of the entropy service (env ENTROPY_URL); empty runs the embedded simulator")
	fs.StringVar(&f.apiKey, "api-key", "", "API `key` of the service (prefer env ENTROPY_API_KEY: flags show in ps)")
	fs.StringVar(&f.publicKey, "public-key", os.Getenv("ENTROPY_PUBLIC_KEY"), "the service's Ed25519 public key, `base64` (env ENTROPY_PUBLIC_KEY)")
	fs.BoolVar(&f.fetchKey, "fetch-public-key", false, "trust the key the service serves at /v1/public-key on first use, instead of --public-key")
	fs.BoolVar(&f.allowHTTP, "allow-http", false, "allow a plain http:// URL to a host that is not loopback")
	fs.StringVar(&f.policy, "policy", "degrade", "when verifiable entropy is unavailable: degrade (crypto/rand, labelled), defer (wait) or fail")
	fs.DurationVar(&f.timeout, "timeout", 15*time.Second, "how long to wait for verifiable entropy")
	fs.StringVar(&f.name, "source-name", os.Getenv("ENTROPY_SOURCE_NAME"), "the service's `name` in labels (env ENTROPY_SOURCE_NAME; default: the host:port of --url, so that verify --url finds the same name; the embedded simulator is always \"simulator\")")
	fs.StringVar(&f.sources, "source", "service", "sources in priority order, comma-separated: service (--url, or the simulator), drand, drand:quicknet, drand:default (drand is public: for draws, never for keys)")
	fs.StringVar(&f.relays, "relays", strings.Join(drandsource.PublicRelays(), ","), "drand relay `URLs`, comma-separated, tried in turn")
	f.fleet.add(fs)
}

// parseSources reads --source: names in priority order, each once.
func parseSources(spec string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, name := range strings.Split(spec, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		switch name {
		case "service", "drand:quicknet", "drand:default":
		case "drand":
			name = "drand:quicknet"
		default:
			return nil, fmt.Errorf("--source %q: want service, drand, drand:quicknet or drand:default", name)
		}
		if seen[name] {
			return nil, fmt.Errorf("--source names %s twice", name)
		}
		seen[name] = true
		out = append(out, name)
	}
	return out, nil
}

// given reports which flags the command line set.
func (f *sourceFlags) given() map[string]bool {
	if f.fs == nil {
		return map[string]bool{}
	}
	return setFlags(f.fs)
}

// checkUnused returns the error of a flag the command line set that would
// have no effect with the sources names (--source, parsed): a flag of the
// service without the service, --relays without a drand chain, --allow-http
// with neither --url nor a drand chain. A flag that does nothing must not
// pass for one that did. Only the command line counts here: one environment
// may serve commands with other sources.
func (f *sourceFlags) checkUnused(names []string) error {
	given := f.given()
	service, drand := false, false
	for _, name := range names {
		if name == "service" {
			service = true
		} else {
			drand = true
		}
	}
	if !service {
		for _, name := range []string{"url", "api-key", "public-key", "fetch-public-key", "source-name"} {
			if given[name] {
				return badFlagf("--%s has no effect with --source %s: it configures the service; add service to --source, or leave --%s out", name, f.sources, name)
			}
		}
	}
	switch {
	case given["relays"] && !drand:
		return badFlagf("--relays has no effect without a drand chain in --source: add drand to --source, or leave --relays out")
	case given["allow-http"] && !drand && f.url == "":
		return badFlagf("--allow-http has no effect without --url (or ENTROPY_URL) or a drand chain in --source: the embedded simulator serves loopback only")
	}
	return nil
}

// drandSource opens the drand chain named "drand:CHAIN" over --relays.
func (f *sourceFlags) drandSource(name string) (*drandsource.Source, error) {
	chain, err := drandsource.Chain(strings.TrimPrefix(name, "drand:"))
	if err != nil {
		return nil, badFlag(err)
	}
	var relays []string
	for _, r := range strings.Split(f.relays, ",") {
		if r = strings.TrimSpace(r); r != "" {
			relays = append(relays, r)
		}
	}
	if len(relays) == 0 {
		return nil, badFlagf("--relays is empty: name at least one drand relay")
	}
	var opts []drandsource.Option
	if f.allowHTTP {
		opts = append(opts, drandsource.WithAllowInsecureHTTP())
	}
	src, err := drandsource.New(chain, relays, opts...)
	return src, badFlag(err) // New checks the relay URLs, and fetches nothing
}

// provider is an opened Provider and what to close with it.
type provider struct {
	*entropy.Provider
	sim    *sim.Server  // the embedded simulator, or nil
	after  func() error // closes what the Provider used (the fleet's Redis client)
	source string       // the source name labels show
	policy entropy.Policy
}

// hopeless reports whether waiting for the pool (waitPool's error err) is
// pointless because every source failed permanently: a key the service
// refuses (401, 403), a spent balance (402), a public key that never
// verifies. That is a misconfiguration, not an outage, so whatever the
// policy the command fails with the service's message instead of falling
// back (degrade) or waiting out the timeout (defer).
func (p *provider) hopeless(err error) bool {
	return err != nil && entropy.Classify(err) == entropy.Permanent
}

// Close closes the Provider and the embedded simulator.
func (p *provider) Close() error {
	err := p.Provider.Close()
	if p.after != nil {
		err = errors.Join(err, p.after())
	}
	if p.sim != nil {
		err = errors.Join(err, p.sim.Close())
	}
	return err
}

// closeSim closes the embedded simulator, if open started one, when open
// fails.
func (p *provider) closeSim() {
	if p.sim != nil {
		_ = p.sim.Close()
	}
}

// open makes the Source the flags describe and a Provider over it. size is
// the largest read the command will make; the pool holds twice that, so
// that it can hold size bytes while it tops up.
func (f *sourceFlags) open(size int, opts ...entropy.Option) (*provider, error) {
	pol, err := parsePolicy(f.policy)
	if err != nil {
		return nil, badFlag(err)
	}
	if f.timeout <= 0 {
		return nil, badFlagf("--timeout %v must be positive", f.timeout)
	}
	apiKey := f.apiKey
	if apiKey == "" {
		apiKey = os.Getenv("ENTROPY_API_KEY")
	}
	logSink.hide(apiKey)
	names, err := parseSources(f.sources)
	if err != nil {
		return nil, badFlag(err)
	}
	if err := f.checkUnused(names); err != nil {
		return nil, err
	}
	out := &provider{policy: pol}
	var srcs []entropy.Source
	var labels []string
	drandOnly := true
	for _, name := range names {
		var src interface {
			entropy.Source
			Name() string
		}
		var err error
		if name == "service" {
			drandOnly = false
			src, err = f.serviceSource(apiKey, out)
		} else {
			src, err = f.drandSource(name)
		}
		if err != nil {
			out.closeSim()
			return nil, err
		}
		srcs = append(srcs, src)
		labels = append(labels, src.Name())
	}
	out.source = strings.Join(labels, ",")
	// A command makes one read of size bytes and exits: ask the service for
	// what it needs, not for a long-running pool (each byte fetched is
	// charged to the API key's balance, and the rest is thrown away).
	fetch := min(max(size, 1), httpsource.MaxSize)
	buffer := max(2*size, fetch)
	if drandOnly {
		// A beacon round holds 32 bytes: keep the pool to what the command needs.
		buffer, fetch = max(2*size, 32), 32
	}
	fleetOpts, after, err := f.fleet.options(f.given())
	if err != nil {
		out.closeSim()
		return nil, err
	}
	out.after = after
	all := append(fleetOpts,
		entropy.WithPolicy(pol),
		entropy.WithBufferSize(buffer),
		entropy.WithFetchSize(fetch),
		entropy.WithFailover(srcs[1:]...),
	)
	all = append(all, opts...)
	p, err := entropy.New(srcs[0], all...)
	if err != nil {
		_ = after()
		out.closeSim()
		return nil, err
	}
	out.Provider = p
	return out, nil
}

// serviceSource makes the reference-protocol source: --url, or the embedded
// simulator (started into out.sim) when no URL is set.
func (f *sourceFlags) serviceSource(apiKey string, out *provider) (*httpsource.Source, error) {
	var src *httpsource.Source
	var err error
	if f.url == "" {
		// Settings of a service that is not there would be silently
		// dropped: each is a bad command line.
		switch {
		case apiKey != "" || f.publicKey != "":
			return nil, badFlagf("an API key or public key was given without a URL: set --url (or ENTROPY_URL), or unset them to use the simulator")
		case f.fetchKey:
			return nil, badFlagf("--fetch-public-key was given without --url (or ENTROPY_URL): the embedded simulator's key is pinned; set --url, or leave --fetch-public-key out")
		case strings.TrimSpace(f.name) != "":
			return nil, badFlagf("--source-name (or ENTROPY_SOURCE_NAME) was given without --url (or ENTROPY_URL): the embedded simulator is always named %q; set --url, or leave --source-name out", sim.SourceName)
		}
		out.sim = sim.New()
		src, err = out.sim.Source()
		if err != nil {
			_ = out.sim.Close()
			return nil, err
		}
	} else {
		hopts := []httpsource.Option{httpsource.WithAPIKey(apiKey)}
		switch {
		case f.publicKey != "" && f.fetchKey:
			return nil, badFlagf("--fetch-public-key was given with --public-key (or ENTROPY_PUBLIC_KEY), which it would not override: give one of them")
		case f.publicKey != "":
			raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(f.publicKey))
			if err != nil || len(raw) != ed25519.PublicKeySize {
				return nil, badFlagf("--public-key must be %d bytes of standard base64", ed25519.PublicKeySize)
			}
			hopts = append(hopts, httpsource.WithPublicKey(raw))
		case f.fetchKey:
			hopts = append(hopts, httpsource.WithFetchPublicKey())
		default:
			return nil, badFlagf("no public key: give --public-key (or ENTROPY_PUBLIC_KEY), or --fetch-public-key to trust the service's on first use; without one no byte can be verified")
		}
		if f.allowHTTP {
			hopts = append(hopts, httpsource.WithAllowInsecureHTTP())
		}
		hopts = append(hopts, httpsource.WithName(serviceName(f.name, f.url)))
		if src, err = httpsource.New(f.url, hopts...); err != nil {
			return nil, badFlag(err) // New checks the URL and the key, and fetches nothing
		}
	}
	return src, nil
}

// parsePolicy reads --policy: "degrade", "defer" or "fail", in any case.
func parsePolicy(s string) (entropy.Policy, error) {
	for _, p := range []entropy.Policy{entropy.Degrade, entropy.Defer, entropy.Fail} {
		if strings.EqualFold(strings.TrimSpace(s), p.String()) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("unknown policy %q (want degrade, defer or fail)", s)
}
