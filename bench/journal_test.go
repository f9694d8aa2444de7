package bench

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/internal/journaltest"
	"github.com/provenrand/entropy/internal/pgtest"
	"github.com/provenrand/entropy/journal"
	"github.com/provenrand/entropy/pgjournal"
)

// envPostgres names the variable that points the PostgreSQL benchmark at a
// database.
const envPostgres = "ENTROPY_TEST_POSTGRES"

// BenchmarkReadFor measures ReadFor of 32 B with each journal:
//
//   - first: a new event each time: a lookup, a draw from the pool, the
//     block records flushed, the event recorded (fsync for the file; a
//     transaction on the chain head row for PostgreSQL);
//   - repeat: an event this Provider drew before (answered from memory);
//   - replica: an event another Provider sharing the journal drew (a
//     lookup in the journal: a map for the file, a query for PostgreSQL).
//
// The PostgreSQL rows need ENTROPY_TEST_POSTGRES and use a schema of their
// own, dropped at the end.
func BenchmarkReadFor(b *testing.B) {
	b.Run("file", func(b *testing.B) {
		benchReadFor(b, func(b *testing.B) entropy.Journal {
			j, err := journal.Open(filepath.Join(b.TempDir(), "bench.jsonl"))
			require.NoError(b, err)
			b.Cleanup(func() { _ = j.Close() })
			return j
		})
	})
	b.Run("postgres", func(b *testing.B) {
		dsn := os.Getenv(envPostgres)
		if dsn == "" {
			b.Skip("set " + envPostgres + " to a PostgreSQL DSN to benchmark the PostgreSQL journal")
		}
		benchReadFor(b, func(b *testing.B) entropy.Journal {
			schema := pgtest.Schema(b, dsn, "entropy_bench_")
			j, err := pgjournal.Open(context.Background(), dsn, pgjournal.WithSchema(schema))
			require.NoError(b, err)
			b.Cleanup(j.Close)
			return j
		})
	})
}

func benchReadFor(b *testing.B, open func(*testing.B) entropy.Journal) {
	newProvider := func(b *testing.B, j entropy.Journal) *entropy.Provider {
		p, err := entropy.New(journaltest.NewSource(), entropy.WithJournal(j), entropy.WithRateLimit(rate.Inf, 1),
			entropy.WithBufferSize(1<<20), entropy.WithFetchSize(64<<10))
		require.NoError(b, err)
		b.Cleanup(func() { _ = p.Close() })
		// Settle: the pool full and its block records written (an event
		// draw flushes them), so that the timed loop meets neither.
		require.NoError(b, p.WaitReady(context.Background()))
		deadline := time.Now().Add(30 * time.Second)
		for st := p.Stats(); st.Pooled < st.Capacity-64<<10 && time.Now().Before(deadline); st = p.Stats() {
			time.Sleep(time.Millisecond)
		}
		var id [8]byte
		_, _ = crand.Read(id[:])
		_, err = p.ReadFor(context.Background(), fmt.Sprintf("warm-up-%x", id), make([]byte, 32))
		require.NoError(b, err)
		return p
	}
	ctx := context.Background()
	buf := make([]byte, 32)
	b.Run("first", func(b *testing.B) {
		p := newProvider(b, open(b))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := p.ReadFor(ctx, fmt.Sprintf("event-%d", i), buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("repeat", func(b *testing.B) {
		p := newProvider(b, open(b))
		_, err := p.ReadFor(ctx, "event", buf)
		require.NoError(b, err)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := p.ReadFor(ctx, "event", buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("replica", func(b *testing.B) {
		j := open(b)
		drawer := newProvider(b, j)
		for i := 0; i < b.N; i++ {
			_, err := drawer.ReadFor(ctx, fmt.Sprintf("event-%d", i), buf)
			require.NoError(b, err)
		}
		p := newProvider(b, j)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := p.ReadFor(ctx, fmt.Sprintf("event-%d", i), buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}
