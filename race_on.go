//go:build race

package entropy

// raceEnabled: the race detector is on. It allocates by itself, now and
// then a dozen times at once, so the tests that count allocations skip.
const raceEnabled = true
