package entropy

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"sync"
)

// jobSet remembers every (source, job) pair the Provider has taken, so a
// source that hands out a job again, however long after, cannot make the
// Provider serve its bytes twice (contract point 3). It keeps a 64-bit keyed
// hash of each pair, not the names, in an open-addressing table (linear
// probing) that it grows by a quarter when it is 80 % full: so it stays
// between 64 % and 80 % full, and holds 10 to 12.5 bytes a job (8 bytes a
// slot); a Provider that has taken 1 GiB in 64 KiB jobs holds about 200 KiB.
// Two pairs with the same hash (probability about n²/2^65 after n jobs) make
// the later one look taken: a fresh block refused, never a replay served.
type jobSet struct {
	mu    sync.Mutex
	seed  maphash.Seed
	slots []uint64 // 0: empty; a hash of 0 is stored as 1
	n     int      // slots in use
}

// jobSetMin is the table's first size, in slots.
const jobSetMin = 64

func newJobSet() *jobSet {
	return &jobSet{seed: maphash.MakeSeed()}
}

// hash returns the keyed hash of the pair, never 0.
func (s *jobSet) hash(source, job string) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(source))) // so that no two pairs write the same bytes
	_, _ = h.Write(n[:])
	_, _ = h.WriteString(source)
	_, _ = h.WriteString(job)
	if k := h.Sum64(); k != 0 {
		return k
	}
	return 1
}

// add records the job and reports whether it was new.
func (s *jobSet) add(source, job string) bool {
	k := s.hash(source, job)
	s.mu.Lock()
	defer s.mu.Unlock()
	if (s.n+1)*5 > len(s.slots)*4 {
		s.grow()
	}
	if !insertSlot(s.slots, k) {
		return false
	}
	s.n++
	return true
}

// grow moves the table into one a quarter larger (the first: jobSetMin
// slots). The caller holds s.mu.
func (s *jobSet) grow() {
	size := max(jobSetMin, len(s.slots)+len(s.slots)/4)
	slots := make([]uint64, size)
	for _, k := range s.slots {
		if k != 0 {
			insertSlot(slots, k)
		}
	}
	s.slots = slots
}

// insertSlot puts k into the table (linear probing from the slot that the
// high bits of k times the size name) and reports whether it was absent.
// The table has a free slot.
func insertSlot(slots []uint64, k uint64) bool {
	i, _ := bits.Mul64(k, uint64(len(slots)))
	for {
		switch slots[i] {
		case 0:
			slots[i] = k
			return true
		case k:
			return false
		}
		if i++; i == uint64(len(slots)) {
			i = 0
		}
	}
}
