// Package fsizelimit runs a test's child process under a file size limit,
// so that a write past the limit fails with EFBIG as it does on a full disk:
// the parent adds Env to the child's environment with Set, the child calls
// FromEnv first thing.
package fsizelimit

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
)

// Env names the limit, in bytes, in the child's environment.
const Env = "ENTROPY_TEST_FILE_SIZE_LIMIT"

// Set makes cmd run under a file size limit of limit bytes (its child must
// call FromEnv).
func Set(cmd *exec.Cmd, limit int64) {
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", Env, limit))
}

// FromEnv applies the limit named by Env, if set, to this process: it
// ignores SIGXFSZ (so a write past the limit fails with EFBIG instead of
// killing the process) and sets RLIMIT_FSIZE. It reports whether a limit
// was applied. Where the system has no such limit, it returns an error.
func FromEnv() (bool, error) {
	v, ok := os.LookupEnv(Env)
	if !ok {
		return false, nil
	}
	limit, err := strconv.ParseInt(v, 10, 64)
	if err != nil || limit < 0 {
		return false, fmt.Errorf("fsizelimit: %s=%q is not a size", Env, v)
	}
	if err := apply(limit); err != nil {
		return false, err
	}
	return true, nil
}

// Supported reports whether this system can limit file sizes.
func Supported() bool { return supported }
