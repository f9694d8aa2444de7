package entropy

import (
	"sync"
	"sync/atomic"
)

// episodeState tracks the current fallback episode (contract point 9). The
// fast path only loads open; everything else is under mu and runs once per
// episode boundary, not per read.
type episodeState struct {
	open  atomic.Bool
	mu    sync.Mutex
	cur   FallbackEpisode
	count atomic.Uint64 // episodes started
	// closed is set (under mu) by Close: no episode opens after it, so none
	// is left open, unrecorded, by a fallback read that raced Close.
	closed bool
}

// count starts a fallback episode if none is open; the caller has served
// a fallback read, counted in fallback epoch epoch (see local). If that
// epoch has ended, an episode that ended since holds the read, and no
// episode is opened for it: one would end holding no read at all.
func (p *Provider) count(reason error, epoch uint64) {
	e := &p.episodes
	if e.open.Load() {
		return
	}
	e.mu.Lock()
	if e.open.Load() || e.closed || p.fbEpoch.Load() != epoch {
		e.mu.Unlock()
		return
	}
	e.cur = FallbackEpisode{Start: p.cfg.clock.Now(), Reason: reason}
	e.open.Store(true)
	e.count.Add(1)
	// Queued under e.mu, so that a start is always queued before its end
	// (and before Close's last drain). The queue's own lock is short and
	// never held while a hook runs.
	p.notes.episode(e.cur)
	e.mu.Unlock()
}

// endEpisode closes the open episode, if any, and hands it to the notifier.
func (p *Provider) endEpisode() { p.finishEpisode(false) }

// finishEpisode ends the open episode; with last set (Close) it also stops
// any new one from opening.
func (p *Provider) finishEpisode(last bool) {
	e := &p.episodes
	e.mu.Lock()
	if last {
		e.closed = true
	}
	if !e.open.Load() {
		if last {
			p.closeEpisodes()
		}
		e.mu.Unlock()
		return
	}
	e.open.Store(false)
	ep := e.cur
	ep.End = p.cfg.clock.Now()
	ep.Ended = true
	// The episode's reads are those of the fallback epoch it ends: every
	// fallback read since the episode before it ended.
	reads, bytes := p.endCounts(last)
	ep.Reads, ep.Bytes = int64(reads), int64(bytes)
	e.cur = FallbackEpisode{}
	p.notes.episode(ep)
	e.mu.Unlock()
}

// closeEpisodes is finishEpisode at Close with no episode open. It ends the
// last fallback epoch all the same (no fallback read is counted after it,
// see local), and if reads were counted since the last episode ended, they
// are reads that served their bytes but met Close before they could open
// their episode: they get one of their own, started and ended at Close, so
// that every fallback read is in exactly one recorded episode. The caller
// holds e.mu.
func (p *Provider) closeEpisodes() {
	e := &p.episodes
	reads, bytes := p.endCounts(true)
	if reads == 0 {
		return
	}
	now := p.cfg.clock.Now()
	start := FallbackEpisode{Start: now, Reason: p.reason.Load()}
	end := start
	end.End, end.Ended = now, true
	end.Reads, end.Bytes = int64(reads), int64(bytes)
	e.count.Add(1)
	p.notes.episode(start)
	p.notes.episode(end)
}
