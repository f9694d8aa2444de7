package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

func init() {
	register(&command{
		name:    "version",
		usage:   "version",
		summary: "print the version of entropy (also: entropy --version)",
		run:     runVersion,
	})
}

// runVersion is the version command, and entropy --version.
func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	c := commands["version"]
	fs := newFlagSet(c)
	if code, done := parseFlags(c, fs, args, stdout, stderr); done {
		return code
	}
	if _, err := fmt.Fprintln(stdout, versionLine()); err != nil {
		return fail(stderr, c, err)
	}
	return exitOK
}

// versionLine is "entropy VERSION (REVISION) GOVERSION": the module version
// of a build from a tagged module (go install ...@v1.2.3), or "(devel)" for
// a build from a checkout, which then names its commit.
func versionLine() string {
	v, rev, dirty := "(devel)", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	line := "entropy " + v
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if dirty {
			rev += "+dirty"
		}
		line += " (" + rev + ")"
	}
	return line + " " + runtime.Version()
}
