package entropy

import "sync"

// allocBatch hands out new zero values of T carved from arrays of size
// values, so that a path that needs one per request or per block makes one
// allocation per size of them. A value is never handed out twice: the
// array stays alive, as the garbage collector sees it, while any of its
// values is referenced, which is the price (size-1 idle values at most per
// live one). Safe for concurrent use.
type allocBatch[T any] struct {
	mu   sync.Mutex
	free []T
}

// get returns a new zero T; size is how many to allocate at once when the
// batch is empty.
func (a *allocBatch[T]) get(size int) *T {
	a.mu.Lock()
	if len(a.free) == 0 {
		a.free = make([]T, max(size, 1))
	}
	v := &a.free[0]
	a.free = a.free[1:]
	a.mu.Unlock()
	return v
}
