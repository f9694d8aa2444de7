package entropy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Journal retry timing. A record that the journal failed to write is tried
// again after journalRetryMin, doubling to journalRetryMax (with jitter), so
// that a database that is down is not hammered and one that comes back is
// written to within journalRetryMax. Each call gets journalCallTimeout. Once
// Close has begun, the call in flight and the records left have
// journalCloseBudget in all (closeBegan).
const (
	journalRetryMin    = 20 * time.Millisecond
	journalRetryMax    = 2 * time.Second
	journalCallTimeout = 10 * time.Second
	journalCloseBudget = 3 * time.Second
)

// journalQueue holds the block and fallback records on their way to the
// journal, in order, with the flush marks of event draws between them. It
// is used by the notifier goroutine only, apart from mu, lastErr and failed,
// which flush reads through failure().
type journalQueue struct {
	q       []note
	backoff time.Duration // the current retry delay; 0 after a success
	waiting bool          // a retry is scheduled: do not write before it
	timer   *time.Timer

	// ctx is the parent of every call to the journal; end cancels it when
	// the close budget has run out (closeBegan) or when the queue is done at
	// Close, whichever comes first. Both are set by init.
	ctx context.Context
	end context.CancelFunc

	mu      sync.Mutex
	lastErr error         // the last failure, nil once the head was written
	failed  chan struct{} // closed and replaced at every failure
	closing bool          // Close has begun: the budget runs from the next call on
	inCall  bool          // the notifier is in a call to the journal
	budget  *time.Timer   // ends ctx journalCloseBudget after it started; nil before
}

func (jq *journalQueue) init() {
	jq.failed = make(chan struct{})
	jq.ctx, jq.end = context.WithCancel(context.Background())
}

// closeBegan starts the close budget: Close calls it as it begins, so that
// a journal that stalls (a database that no longer answers) holds Close for
// journalCloseBudget at most, not for a call's own timeout. The budget runs
// from now if the notifier is in a call to the journal, and otherwise from
// its next call (calling): a hook the notifier runs first (an alert sent
// when Close ends an episode) takes the time it takes, but not the
// journal's, so that a journal that answers loses no record to it.
func (jq *journalQueue) closeBegan() {
	jq.mu.Lock()
	jq.closing = true
	if jq.inCall {
		jq.startBudget()
	}
	jq.mu.Unlock()
}

// calling records whether the notifier is in a call to the journal; the
// first call after Close began starts the close budget. jq.mu is not held.
func (jq *journalQueue) calling(in bool) {
	jq.mu.Lock()
	jq.inCall = in
	if in && jq.closing {
		jq.startBudget()
	}
	jq.mu.Unlock()
}

// startBudget ends every call to the journal journalCloseBudget from now,
// unless the budget has started already. jq.mu is held.
func (jq *journalQueue) startBudget() {
	if jq.budget == nil {
		jq.budget = time.AfterFunc(journalCloseBudget, jq.end)
	}
}

// done ends the calls to the journal and stops the close budget's timer:
// the queue has been written, or given up, at Close.
func (jq *journalQueue) done() {
	jq.end()
	jq.mu.Lock()
	if jq.budget != nil {
		jq.budget.Stop()
	}
	jq.mu.Unlock()
}

// failure returns a channel that is closed at the next failure, and the
// last failure (nil when the journal is writing).
func (jq *journalQueue) failure() (<-chan struct{}, error) {
	jq.mu.Lock()
	defer jq.mu.Unlock()
	return jq.failed, jq.lastErr
}

func (jq *journalQueue) setFailure(err error) {
	jq.mu.Lock()
	jq.lastErr = err
	if err != nil {
		close(jq.failed)
		jq.failed = make(chan struct{})
	}
	jq.mu.Unlock()
}

// retryC returns the channel of the scheduled retry, nil if none is.
func (jq *journalQueue) retryC() <-chan time.Time {
	if !jq.waiting || jq.timer == nil {
		return nil
	}
	return jq.timer.C
}

// enqueue adds a journal note (a block, an ended episode or a flush mark).
func (n *notifier) enqueue(x note) {
	n.jq.q = append(n.jq.q, x)
}

// write hands the queued records to the journal in order until one fails;
// then it schedules a retry with backoff and returns. The failed record
// stays at the head of the queue: nothing is skipped, nothing is dropped.
func (n *notifier) write() {
	jq := &n.jq
	if jq.waiting {
		return
	}
	for len(jq.q) > 0 {
		x := jq.q[0]
		if x.flushed == nil {
			if err := n.record(jq.ctx, x); err != nil {
				n.p.journalError(x.what(), err)
				jq.setFailure(err)
				jq.backoff = min(max(2*jq.backoff, journalRetryMin), journalRetryMax)
				d := jq.backoff/2 + rand.N(jq.backoff/2+1)
				if jq.timer == nil {
					jq.timer = time.NewTimer(d)
				} else {
					jq.timer.Reset(d)
				}
				jq.waiting = true
				return
			}
			if jq.backoff != 0 {
				jq.backoff = 0
				jq.setFailure(nil)
			}
		} else {
			close(x.flushed)
		}
		jq.q[0] = note{}
		jq.q = jq.q[1:]
	}
	jq.q = nil
}

// retry is called when the scheduled retry is due.
func (n *notifier) retry() {
	n.jq.waiting = false
	n.write()
}

// writeAtClose writes what is left when the Provider has closed: it keeps
// retrying with backoff until the journal's calls end, when the close
// budget has run out (closeBegan), then gives up on the records still
// unwritten, counting each in Stats' JournalLost and logging it, so that
// Close cannot hang on a journal that is gone or stalls.
func (n *notifier) writeAtClose() {
	jq := &n.jq
	defer jq.done()
	if jq.timer != nil {
		jq.timer.Stop()
	}
	jq.waiting = false
	for {
		n.write()
		if len(jq.q) == 0 || jq.ctx.Err() != nil {
			break
		}
		jq.waiting = false
		t := time.NewTimer(jq.backoff)
		select {
		case <-t.C:
		case <-jq.ctx.Done():
			t.Stop()
		}
	}
	for _, x := range jq.q {
		if x.flushed != nil {
			close(x.flushed)
			continue
		}
		n.p.journalLost.Add(1)
		if l := n.p.cfg.logger; l != nil {
			l.Error("entropy: journal record lost at Close: the journal kept failing", "record", x.what())
		}
	}
	jq.q = nil
}

// record writes one block or fallback record.
func (n *notifier) record(ctx context.Context, x note) error {
	n.jq.calling(true)
	defer n.jq.calling(false)
	ctx, cancel := context.WithTimeout(ctx, journalCallTimeout)
	defer cancel()
	j := n.p.cfg.journal
	switch {
	case x.block != nil:
		return j.RecordBlock(ctx, *x.block)
	case x.episode != nil:
		return j.RecordFallback(ctx, *x.episode)
	}
	return nil
}

// what names the kind of record a note carries, for logs.
func (x note) what() string {
	if x.block != nil {
		return "block"
	}
	return "fallback"
}

// errJournalFailing is wrapped by flush's error when the journal is failing
// to write the records an event draw must follow.
var errJournalFailing = errors.New("the journal is failing to write")

// flush waits until every note queued before it has been delivered, and
// every block and fallback record queued before it written to the journal:
// an event's record must not reach the journal before the records of the
// blocks its bytes came from. It returns at once without a journal. On the
// notifier goroutine itself (a callback calling ReadFor), which cannot wait
// for itself, it writes the block records itself (flushSelf). While the
// journal fails to write those records it returns an error wrapping the
// journal's, rather than wait for the retries: the caller's draw fails
// cleanly, and a later one succeeds once the journal is back.
func (n *notifier) flush(ctx context.Context) error {
	if n.p.cfg.journal == nil {
		return nil
	}
	switch n.caller() {
	case callerSelf:
		return n.flushSelf()
	case callerUnsure:
		// Perhaps this Provider's notifier, perhaps another's: it can
		// neither wait for the notifier nor write for it. The event's
		// record may precede its blocks' (WithFallbackHook).
		return nil
	}
	failed, _ := n.jq.failure()
	ch := make(chan struct{})
	if !n.push(note{flushed: ch}) {
		return ErrClosed // the notifier has delivered its last note
	}
	select {
	case <-ch:
		return nil
	case <-failed:
		_, err := n.jq.failure()
		if err == nil {
			// Written meanwhile: wait for the mark as usual.
			select {
			case <-ch:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			case <-n.p.ctx.Done():
				return ErrClosed
			}
		}
		return fmt.Errorf("%w: %w", errJournalFailing, err)
	case <-ctx.Done():
		return ctx.Err()
	case <-n.p.ctx.Done():
		return ErrClosed
	}
}

// flushSelf is flush on the notifier goroutine: a hook, or the logger,
// drawing an event. It cannot wait for the notifier, which is waiting for
// it to return, so it does the notifier's work for the blocks: it moves the
// block records queued so far (the rest of the notifier's batch, then the
// queue) into the journal queue, ahead of the notes queued between them,
// and writes the journal queue. A block record may then reach the journal
// before the record of an episode that ended before it was fetched; each
// carries its own times. A journal that draws from inside one of its own
// calls cannot be called again: then flushSelf returns at once, and the
// event's record may reach the journal before its blocks' (WithJournal).
func (n *notifier) flushSelf() error {
	n.jq.mu.Lock()
	inCall := n.jq.inCall
	n.jq.mu.Unlock()
	if inCall {
		return nil
	}
	n.batch = n.takeBlocks(n.batch)
	n.mu.Lock()
	n.queue = n.takeBlocks(n.queue)
	n.mu.Unlock()
	n.write()
	for _, x := range n.jq.q {
		if x.block != nil {
			// Not written: the journal failed now or is waiting for a retry.
			_, err := n.jq.failure()
			if err == nil {
				err = ErrClosed // the close budget ended the calls
			}
			return fmt.Errorf("%w: %w", errJournalFailing, err)
		}
	}
	return nil
}

// takeBlocks moves the block records of q into the journal queue, in
// order, and returns the rest of q, in order, in q's array.
func (n *notifier) takeBlocks(q []note) []note {
	rest := q[:0]
	for _, x := range q {
		if x.block != nil {
			n.enqueue(x)
		} else {
			rest = append(rest, x)
		}
	}
	clear(q[len(rest):])
	return rest
}
