//go:build !unix

package journal

import "os"

// lockFile does nothing where advisory locks are not available: there, keep
// one Journal per file yourself.
func lockFile(*os.File) error { return nil }

// heldByJournal cannot tell, where advisory locks are not available,
// whether a Journal is writing the file: it reports false.
func heldByJournal(*os.File) bool { return false }
