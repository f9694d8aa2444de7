package faultmatrix_test

import (
	"log/slog"

	"github.com/provenrand/entropy/internal/testkit"
)

// newLogger logs everything at debug level and above into buf.
func newLogger(buf *testkit.SyncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
