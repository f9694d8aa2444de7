package entropy

import (
	"sync"
	"time"
)

// goReaders is the reader loop of the concurrency tests: it starts n
// goroutines, each calling read(g, i) for i = 0, 1, … until read returns
// false, ops calls were made (ops 0: no limit), or stop is closed (nil:
// never). The function it returns waits for them all.
func goReaders(n, ops int, stop <-chan struct{}, read func(g, i int) bool) (wait func()) {
	var wg sync.WaitGroup
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ops == 0 || i < ops; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if !read(g, i) {
					return
				}
			}
		}()
	}
	return wg.Wait
}

// runReaders is goReaders of ops calls each, waited for.
func runReaders(n, ops int, read func(g, i int) bool) { goReaders(n, ops, nil, read)() }

// waitWithin calls wait (a WaitGroup's Wait, goReaders' wait), waiting at
// most d for it to return; it reports whether it did.
func waitWithin(wait func(), d time.Duration) bool {
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
