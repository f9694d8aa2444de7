package entropy

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
)

// jobSet remembers every (source, job) pair the Provider has taken, so a
// source that hands out a job again, however long after, cannot make the
// Provider serve its bytes twice (contract point 3). It keeps a 64-bit keyed
// hash of each pair, not the names: about 16 bytes a job (a 64 KiB fetch),
// so a Provider that has taken 1 GiB in 64 KiB jobs holds 256 KiB. Two pairs
// with the same hash (probability about n²/2^65 after n jobs) make the later
// one look taken: a fresh block refused, never a replay served.
type jobSet struct {
	mu   sync.Mutex
	seed maphash.Seed
	set  map[uint64]struct{}
}

func newJobSet() *jobSet {
	return &jobSet{seed: maphash.MakeSeed(), set: make(map[uint64]struct{})}
}

// add records the job and reports whether it was new.
func (s *jobSet) add(source, job string) bool {
	var h maphash.Hash
	h.SetSeed(s.seed)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(source))) // so that no two pairs write the same bytes
	_, _ = h.Write(n[:])
	_, _ = h.WriteString(source)
	_, _ = h.WriteString(job)
	k := h.Sum64()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.set[k]; ok {
		return false
	}
	s.set[k] = struct{}{}
	return true
}
