package journal

import (
	"context"
	"errors"
)

// The replay guard (contract point 3): a journal knows every job it holds a
// block record of, loaded by Open from the file and kept as records are
// written, refuses a second block record of one (source, job), and answers
// the Provider's question whether a job is new (ClaimJob), so that a job
// replayed by anyone in the middle is refused by every Provider that shares
// the journal and by every later process that opens it.

var (
	// ErrJobExists is returned by RecordBlock for a job the journal already
	// holds a block record of: a job is taken once.
	ErrJobExists = errors.New("journal: job already recorded")
	// ErrDuplicateJob reports, from Verify, a journal that holds two block
	// records of one (source, job): the job was taken twice.
	ErrDuplicateJob = errors.New("journal: job recorded twice (a replay was taken)")
)

// DuplicateJob is a block record of a job recorded before, as Verify finds it.
type DuplicateJob struct {
	Source    string
	JobID     string
	Line      int   // the line of the second (or later) record
	Offset    int64 // its offset in the file
	FirstLine int   // the line of the first record
}

// jobKey names one job of one source.
type jobKey struct{ source, job string }

// jobState is what the journal knows of a job.
type jobState uint8

const (
	jobClaimed  jobState = iota + 1 // a Provider claimed it; its record is on the way
	jobRecorded                     // its block record is in the file
)

var _ interface {
	ClaimJob(ctx context.Context, source, jobID string) (bool, error)
} = (*Journal)(nil)

// ClaimJob reports whether (source, jobID) is new to the journal, and if it
// is, reserves it, so that no other Provider sharing the journal takes it.
// A job the file holds a block record of (from this process or an earlier
// one) or that was claimed before is not new. It implements
// the replay guard of entropy.Journal.
//
// A claim lives in memory until the job's block record is written (the
// Provider queues that record before any byte of the block can be read, and
// Close writes every queued record); a crash in between leaves the job
// unrecorded.
func (j *Journal) ClaimJob(ctx context.Context, source, jobID string) (bool, error) {
	if err := live(ctx); err != nil {
		return false, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return false, errNotOpened
	}
	if j.closed {
		return false, ErrClosed
	}
	k := jobKey{source: source, job: jobID}
	if j.jobs[k] != 0 {
		return false, nil
	}
	j.jobs[k] = jobClaimed
	return true, nil
}

// block notes a block record in the verifier: a job recorded before is a
// duplicate.
func (v *verifier) block(d BlockData) {
	k := jobKey{source: d.Source, job: d.JobID}
	if v.jobs == nil {
		v.jobs = make(map[jobKey]int)
	}
	if first, ok := v.jobs[k]; ok {
		v.rep.DuplicateJobs = append(v.rep.DuplicateJobs, DuplicateJob{Source: d.Source, JobID: d.JobID, Line: v.line, Offset: v.offset, FirstLine: first})
	} else {
		v.jobs[k] = v.line
	}
	if v.onBlock != nil {
		v.onBlock(k)
	}
}
