//go:build !race

package entropy

// raceEnabled: the race detector is off.
const raceEnabled = false
