package entropy

import (
	"crypto/sha256"
	"reflect"
	"runtime"
	"sync"
	"time"
)

// notifier delivers fallback episodes to the hook, the logger and the
// journal, and blocks to the journal, on a goroutine of its own: outside
// every lock, and never on a read's goroutine (a journal append fsyncs).
type notifier struct {
	p        *Provider
	mu       sync.Mutex
	queue    []note
	finished bool // the last note has been delivered (Close): push refuses more
	// batch is the rest of the notes drain took from queue and has not yet
	// delivered. Only the notifier goroutine uses it: drain, and a callback
	// that draws an event (flushSelf).
	batch  []note
	signal chan struct{}
	jq     journalQueue // the records on their way to the journal
}

type note struct {
	fleet   *FleetStatus
	episode *FallbackEpisode
	block   *BlockRecord
	flushed chan struct{} // closed when every note before it is delivered
}

func (n *notifier) init(p *Provider) {
	n.p = p
	n.signal = make(chan struct{}, 1)
	n.jq.init()
}

func (n *notifier) episode(ep FallbackEpisode) { n.push(note{episode: &ep}) }

// block queues the record of a block for the journal, and reports false
// (queuing nothing) if the notifier has delivered its last note at Close:
// the record would never be written, and the block must not be served.
func (n *notifier) block(b BlockRecord) bool { return n.push(note{block: &b}) }
func (n *notifier) fleet(ev FleetStatus)     { n.push(note{fleet: &ev}) }

// push queues x for the notifier goroutine. It reports false, and queues
// nothing, once the notifier has delivered its last note (Close): nothing
// would deliver x. Of the journal's records, only ReadProven's (proven) can
// come that late: the refill's are queued before the notifier's last
// delivery (refillDone), and Close queues the last episode before it.
func (n *notifier) push(x note) bool {
	if n.p.cfg.hook == nil && n.p.cfg.logger == nil && n.p.cfg.journal == nil && n.p.cfg.fleetHook == nil {
		return true
	}
	n.mu.Lock()
	if n.finished {
		n.mu.Unlock()
		return false
	}
	n.queue = append(n.queue, x)
	n.mu.Unlock()
	select {
	case n.signal <- struct{}{}:
	default:
	}
	return true
}

// run delivers notes until the Provider closes, then delivers what is left.
// Journal records that failed are retried, in order, when their backoff has
// passed.
func (n *notifier) run(wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		select {
		case <-n.signal:
			n.markDelivering(true)
			n.drain(false)
			n.markDelivering(false)
		case <-n.jq.retryC():
			n.markDelivering(true)
			n.retry()
			n.markDelivering(false)
		case <-n.p.ctx.Done():
			// The refill goroutine may still queue a block it fetched
			// before it saw the end: deliver after it has stopped.
			n.p.refillDone.Wait()
			n.markDelivering(true)
			n.drain(true)
			n.writeAtClose()
			n.markDelivering(false)
			return
		}
	}
}

// drain delivers the notes queued until none is left. The last drain, at
// Close, marks the notifier finished under the lock under which it found
// the queue empty, so that a note is either delivered or refused (push).
func (n *notifier) drain(last bool) {
	for {
		n.mu.Lock()
		q := n.queue
		n.queue = nil
		if last && len(q) == 0 {
			n.finished = true
		}
		n.mu.Unlock()
		if len(q) == 0 {
			return
		}
		n.batch = q
		for len(n.batch) > 0 {
			x := n.batch[0]
			n.batch[0] = note{}
			n.batch = n.batch[1:]
			n.deliver(x)
		}
		n.batch = nil
		n.write()
	}
}

// deliver hands an episode to the hook and the logger at once, and queues
// blocks, ended episodes and flush marks for the journal (written by
// write, in order, retried when the journal fails).
func (n *notifier) deliver(x note) {
	p := n.p
	if x.flushed != nil {
		if p.cfg.journal == nil {
			close(x.flushed)
		} else {
			n.enqueue(x)
		}
		return
	}
	if ep := x.episode; ep != nil {
		if p.cfg.hook != nil {
			p.cfg.hook(*ep)
		}
		if l := p.cfg.logger; l != nil {
			reason := ""
			if ep.Reason != nil {
				reason = ep.Reason.Error()
			}
			if ep.Ended {
				l.Warn("entropy: fallback episode ended", "start", ep.Start, "end", ep.End, "reads", ep.Reads, "bytes", ep.Bytes, "reason", reason)
			} else {
				l.Warn("entropy: fallback episode started: serving crypto/rand, labelled non-verifiable", "reason", reason)
			}
		}
		if p.cfg.journal != nil && ep.Ended {
			n.enqueue(note{episode: ep})
		}
	}
	if ev := x.fleet; ev != nil {
		p.deliverFleet(*ev)
	}
	if b := x.block; b != nil && p.cfg.journal != nil {
		n.enqueue(note{block: b})
	}
}

func (p *Provider) journalError(what string, err error) {
	p.journalErrs.Add(1)
	if l := p.cfg.logger; l != nil {
		l.Error("entropy: journal append failed, will retry", "record", what, "error", err.Error())
	}
}

func blockRecord(b Block, now time.Time) BlockRecord {
	return BlockRecord{
		Source:     b.Source,
		JobID:      b.JobID,
		Size:       len(b.Data),
		Digest:     sha256.Sum256(b.Data),
		Verifiable: b.Verifiable,
		Time:       now,
	}
}

// caller says who calls into the Provider (Close, or ReadFor's flush), as
// notifier.caller tells.
type caller int

const (
	// callerOther: not this Provider's notifier goroutine, which the caller
	// may wait for.
	callerOther caller = iota
	// callerSelf: this Provider's notifier goroutine, in a callback (a
	// hook, the logger or the journal), which must not wait for the
	// notifier: the notifier is waiting for it to return.
	callerSelf
	// callerUnsure: the notifier goroutine of some Provider, in a callback,
	// while the notifiers of two or more Providers deliver at once: it may
	// be this Provider's. The caller neither waits for the notifier nor
	// touches the notifier's state.
	callerUnsure
)

// delivering is the set of notifiers, of every Provider in the process,
// that are delivering (drain, retry, writeAtClose): the only times a
// notifier goroutine runs a callback.
var delivering deliveringSet

type deliveringSet struct {
	mu sync.Mutex
	in map[*notifier]struct{}
}

// markDelivering marks n as delivering (in true) or no longer (in false).
func (n *notifier) markDelivering(in bool) {
	delivering.mu.Lock()
	if in {
		if delivering.in == nil {
			delivering.in = make(map[*notifier]struct{})
		}
		delivering.in[n] = struct{}{}
	} else {
		delete(delivering.in, n)
	}
	delivering.mu.Unlock()
}

// has reports whether n is delivering.
func (d *deliveringSet) has(n *notifier) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.in[n]
	return ok
}

// caller tells whether its caller runs on this Provider's notifier
// goroutine: a hook, the logger or the journal, called by the notifier,
// calling back into the Provider. The callbacks' signatures (a hook gets an
// episode, Close gets nothing) carry no context that could say so, so it
// asks two things. The call stack says whether the caller is a notifier
// goroutine at all: such a goroutine starts in run, and no other has run's
// frame on its stack (a goroutine that a hook starts has a stack of its
// own). The set of delivering notifiers says whose: a notifier goroutine
// that runs a callback is delivering, so when only one notifier is, the
// caller is that one's; when two or more are, it cannot tell
// (callerUnsure). Close and flush call it once each, never the pool's read
// paths.
func (n *notifier) caller() caller {
	if !onNotifierGoroutine() {
		return callerOther
	}
	delivering.mu.Lock()
	defer delivering.mu.Unlock()
	if len(delivering.in) > 1 {
		return callerUnsure
	}
	if _, ok := delivering.in[n]; ok {
		return callerSelf
	}
	return callerOther
}

// onNotifierGoroutine reports whether run's frame is on the caller's stack.
func onNotifierGoroutine() bool {
	pcs := make([]uintptr, 32)
	for {
		k := runtime.Callers(3, pcs)
		if k < len(pcs) {
			pcs = pcs[:k]
			break
		}
		pcs = make([]uintptr, 2*len(pcs)) // a deep stack: run's frame is at the bottom
	}
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		if f.Function == notifierRun {
			return true
		}
		if !more {
			return false
		}
	}
}

// notifierRun is the name of the notifier goroutine's outermost function.
var notifierRun = runtime.FuncForPC(reflect.ValueOf((*notifier).run).Pointer()).Name()
