package pgjournal_test

import (
	"context"
	"fmt"
	"os"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/pgjournal"
	"github.com/provenrand/entropy/sim"
)

// Every replica of a service opens the same database: an event is drawn
// once for the whole fleet, and every replica returns the same bytes.
func ExampleOpen() {
	ctx := context.Background()
	j, err := pgjournal.Open(ctx, os.Getenv("DATABASE_URL"), pgjournal.WithSchema("lottery"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer j.Close()

	s := sim.New()
	defer s.Close()
	src, err := s.Source()
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := entropy.New(src, entropy.WithJournal(j))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	seed := make([]byte, 32)
	label, err := p.ReadFor(ctx, "lotto-2026-12-05", seed) // the same on every replica
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(label.Verifiable, p.Stats().EventBytesDiscarded)

	// An auditor checks the whole fleet's journal.
	rep, err := j.Verify(ctx)
	fmt.Println(rep.Events, err)
}
