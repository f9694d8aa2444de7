package journal

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy"
)

// A Chain checks the lines of a file journal as Verify does, and the lines
// it appends make a file that Verify accepts: one format, one hashing, for a
// journal in a file or in a database.
func TestChainMatchesTheFileJournal(t *testing.T) {
	path := writeSample(t)
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	want, err := VerifyFile(path)
	require.NoError(t, err)

	c := NewChain()
	var events []string
	for _, line := range bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n")) {
		e, err := c.Check(line)
		require.NoError(t, err)
		assert.Equal(t, line, e.Line)
		assert.Equal(t, lineHash(line), e.Hash)
		if e.Type == TypeEvent {
			events = append(events, e.Event)
			got, err := ParseEvent(line)
			require.NoError(t, err)
			assert.Equal(t, testEvent.Data, got.Data)
		}
	}
	assert.Equal(t, want, c.Report())
	assert.Equal(t, []string{testEvent.Event}, events)

	// Continue the chain from its head and append: the file still verifies.
	seq, head := c.Head()
	c2 := ChainAt(seq, head)
	var more bytes.Buffer
	another := testBlock
	another.JobID = "job-appended-by-a-chain"
	for _, rec := range []any{another, testEpisode} {
		e, err := c2.Append(time.Now(), rec)
		require.NoError(t, err)
		more.Write(e.Line)
		more.WriteByte('\n')
	}
	_, err = c2.Append(time.Now(), testEvent)
	require.NoError(t, err, "a chain started mid-journal does not know earlier events")
	rep, err := Verify(bytes.NewReader(append(raw, more.Bytes()...)))
	require.NoError(t, err)
	assert.Equal(t, want.Records+2, rep.Records)

	// A changed byte is caught by Check and by ParseEvent.
	lines := bytes.Split(raw, []byte("\n"))
	var evLine []byte
	for _, l := range lines {
		if bytes.Contains(l, []byte(`"type":"event"`)) {
			evLine = bytes.Clone(l)
		}
	}
	require.NotNil(t, evLine)
	i := bytes.Index(evLine, []byte(`"data":"`)) + len(`"data":"`)
	evLine[i] ^= 1
	_, err = ParseEvent(evLine)
	assert.ErrorIs(t, err, ErrHashMismatch)
	_, err = c2.Append(time.Now(), struct{}{})
	assert.ErrorIs(t, err, ErrMalformed)
}

// A journal kept elsewhere than in a file (a database row per record) builds
// its lines with a Chain and checks them with another.
func ExampleChain() {
	w := NewChain()
	var lines [][]byte
	for _, rec := range []any{
		HeaderData{Format: Format},
		entropy.EventRecord{Event: "raffle", Data: []byte{1, 2, 3, 4},
			Label: entropy.Label{Verifiable: true, Spans: []entropy.Span{{Source: "quantropy", JobID: "job-1", Length: 4}}}},
	} {
		e, err := w.Append(time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC), rec)
		if err != nil {
			fmt.Println(err)
			return
		}
		lines = append(lines, e.Line)
	}
	r := NewChain()
	for _, l := range lines {
		e, err := r.Check(l)
		fmt.Println(e.Seq, e.Type, e.Event, err)
	}
	rep := r.Report()
	fmt.Println(rep.Records, rep.Events)
	// Output:
	// 1 journal  <nil>
	// 2 event raffle <nil>
	// 2 1
}
