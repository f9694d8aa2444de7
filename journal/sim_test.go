package journal_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/sim"
)

// startSim starts the simulator on loopback with one API key and returns it
// with an HTTP source that uses the key and checks signatures.
func startSim(t *testing.T, key string) (*sim.Server, *httpsource.Source) {
	t.Helper()
	srv := sim.New(sim.WithKey(key, 1<<20))
	_, err := srv.Start()
	require.NoError(t, err)
	src, err := srv.Source(httpsource.WithAPIKey(key))
	require.NoError(t, err)
	return srv, src
}
