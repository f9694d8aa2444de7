package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// pendingFile is draw --transcript FILE: a file that is written whole or
// not at all. Its bytes go to a temporary file in FILE's directory, which
// is synced and only then linked into place under FILE's name, so that a
// draw that fails, is interrupted or is killed (SIGKILL, a power cut)
// never leaves an empty or partial FILE for anyone to trust. FILE must not
// exist; a file that appears under its name while the draw runs is never
// replaced. Every path that does not commit removes the temporary file
// (abort); only a process killed outright leaves it, named
// .entropy-transcript-*.tmp, never under FILE's name.
type pendingFile struct {
	path string   // the file's name, once complete
	tmp  *os.File // the temporary file it is written to; nil once committed or aborted
}

// tmpPrefix begins the name of a transcript's temporary file.
const tmpPrefix = ".entropy-transcript-"

// createPending claims path for a file written later by commit: path must
// not exist (an error that matches fs.ErrExist otherwise), and its
// temporary file is created at once, so that a directory that cannot be
// written is found before anything is drawn.
func createPending(path string) (*pendingFile, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, &fs.PathError{Op: "create", Path: path, Err: fs.ErrExist}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for try := 0; ; try++ {
		var r [8]byte
		_, _ = rand.Read(r[:])
		name := filepath.Join(filepath.Dir(path), tmpPrefix+hex.EncodeToString(r[:])+".tmp")
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) && try < 10 {
			continue
		}
		if err != nil {
			// Said of the name given: the temporary name is ours.
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = &fs.PathError{Op: "create", Path: path, Err: pe.Err}
			}
			return nil, err
		}
		return &pendingFile{path: path, tmp: f}, nil
	}
}

// commit writes b to the temporary file, syncs it and puts it in place
// under the file's name. On any failure the temporary file is removed and
// the name is left as it was.
func (p *pendingFile) commit(b []byte) error {
	if p.tmp == nil {
		return errors.New("transcript: already written or abandoned")
	}
	f := p.tmp
	p.tmp = nil
	_, err := f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = place(f.Name(), p.path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	syncDir(filepath.Dir(p.path))
	return nil
}

// abort closes and removes the temporary file, unless commit has run. It
// may be called any number of times.
func (p *pendingFile) abort() {
	if p == nil || p.tmp == nil {
		return
	}
	_ = p.tmp.Close()
	_ = os.Remove(p.tmp.Name())
	p.tmp = nil
}

// place gives the complete file tmp the name path, which must not exist:
// a hard link fails if it does, where a rename would replace it. On a file
// system without hard links it renames tmp, after checking that path does
// not exist.
func place(tmp, path string) error {
	err := os.Link(tmp, path)
	if err == nil {
		_ = os.Remove(tmp)
		return nil
	}
	if errors.Is(err, fs.ErrExist) {
		return err
	}
	if _, serr := os.Lstat(path); serr == nil {
		return &fs.PathError{Op: "rename", Path: path, Err: fs.ErrExist}
	}
	return os.Rename(tmp, path)
}

// syncDir syncs directory dir, so that a file just named in it keeps its
// name after a crash. It is best effort: some systems cannot sync a
// directory, and the file itself is already synced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
