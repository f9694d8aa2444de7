package draw_test

import (
	"context"
	"fmt"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/draw"
)

// fixedJob stands in for a Provider: it hands out bytes 0, 1, 2, … labelled as
// job "job-1" of a verifiable source.
type fixedJob struct{}

func (fixedJob) ReadLabelled(_ context.Context, b []byte) (entropy.Label, error) {
	for i := range b {
		b[i] = byte(i)
	}
	return entropy.Label{Verifiable: true, Spans: []entropy.Span{{Source: "quantropy", JobID: "job-1", Length: len(b)}}}, nil
}

func ExamplePick() {
	// With a real Provider (Defer policy), ctx bounds the wait for verifiable entropy.
	balls, t, err := draw.Pick(context.Background(), fixedJob{}, 6, 49)
	if err != nil {
		fmt.Println(err)
		return
	}
	for i := range balls {
		balls[i]++ // balls are numbered 1 to 49
	}
	fmt.Println(balls, t.Verifiable, draw.Verify(t))
	// Output: [35 25 38 1 36 28] true <nil>
}

func ExampleVerify() {
	_, t, _ := draw.Shuffle(context.Background(), fixedJob{}, 10)
	fmt.Println(draw.Verify(t))
	t.Outputs[0], t.Outputs[1] = t.Outputs[1], t.Outputs[0]
	fmt.Println(draw.Verify(t) != nil)
	// Output:
	// <nil>
	// true
}

func ExampleInt() {
	n, t, _ := draw.Int(context.Background(), fixedJob{}, 1<<63+1)
	fmt.Println(n, t.Kind)
	// Output: 997030952971201847 int
}
