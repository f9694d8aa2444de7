package draw_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/draw"
	"github.com/provenrand/entropy/health"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/internal/evidence"
	"github.com/provenrand/entropy/journal"
	"github.com/provenrand/entropy/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// simEventTranscripts draws, from a Provider with a journal over the
// simulator, 3 of the entrants for each event named, then stops both, and
// returns the transcripts' JSON, the simulator's key and the journal's path.
func simEventTranscripts(t *testing.T, entrants []string, events ...string) ([][]byte, ed25519.PublicKey, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	j, err := journal.Open(path)
	require.NoError(t, err)
	s := sim.New()
	p, stop := simProvider(t, s, entropy.WithJournal(j))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out [][]byte
	for _, ev := range events {
		_, tr, err := draw.Pick(ctx, p, 3, len(entrants), draw.ForEvent(ev), draw.WithEntrants(entrants))
		require.NoError(t, err)
		js, err := json.Marshal(tr)
		require.NoError(t, err)
		out = append(out, js)
	}
	stop()
	require.NoError(t, j.Close())
	return out, s.PublicKey(), path
}

// An event draw's job is requested for the event and the draw's parameters
// (the entrants' commitment included): the transcript carries the binding
// and the job's proof, and verifies offline, the simulator gone, with the
// binding reported checked. The journal lists the request before the event.
func TestEventDrawIsBoundAndVerifiesOffline(t *testing.T) {
	entrants := []string{"ada", "grace", "edsger", "barbara", "donald"}
	jss, pub, path := simEventTranscripts(t, entrants, "raffle-2026-12-05")
	tr, err := draw.ParseTranscript(jss[0])
	require.NoError(t, err)
	require.NotNil(t, tr.Binding)
	c, err := draw.CommitEntrants(entrants)
	require.NoError(t, err)
	assert.Equal(t, string(draw.Params(draw.KindPick, draw.Inputs{N: 5, K: 3}, &c)), tr.Binding.Params)
	assert.Contains(t, tr.Binding.Params, c.SHA256, "the entrants are part of what the job was requested for")
	require.Len(t, tr.Proofs, 1)

	roots := draw.TrustRoots{PublicKeys: map[string]ed25519.PublicKey{sim.SourceName: pub}}
	rep, err := draw.Check(tr, roots)
	require.NoError(t, err)
	assert.True(t, rep.OriginChecked)
	assert.True(t, rep.EventBound)
	assert.Empty(t, rep.Unchecked)
	require.NoError(t, draw.Verify(tr, roots))

	// Without the key: the nonce is checked, the binding is not called proven.
	rep, err = draw.Check(tr, draw.TrustRoots{})
	require.NoError(t, err)
	assert.False(t, rep.EventBound)

	jr, err := journal.VerifyFile(path)
	require.NoError(t, err)
	assert.Equal(t, 1, jr.Attempts["raffle-2026-12-05"], "the request is in the journal")
}

// Whatever binds the job to the event is edited (the digest recomputed),
// verification fails: the event renamed, the salt or params changed, the
// entrants swapped, or a job made for another event spliced in.
func TestEventBindingEditedFails(t *testing.T) {
	entrants := []string{"ada", "grace", "edsger", "barbara", "donald"}
	jss, pub, _ := simEventTranscripts(t, entrants, "raffle-a", "raffle-b")
	roots := draw.TrustRoots{PublicKeys: map[string]ed25519.PublicKey{sim.SourceName: pub}}
	load := func(js []byte) map[string]any {
		var m map[string]any
		require.NoError(t, json.Unmarshal(js, &m))
		return m
	}
	require.NoError(t, draw.Verify(redigest(t, load(jss[0])), roots))

	m := load(jss[0])
	m["event"] = "raffle-c"
	err := draw.Verify(redigest(t, m), roots)
	assert.ErrorIs(t, err, draw.ErrProof)
	assert.Contains(t, err.Error(), `"nonce"`)

	m = load(jss[0])
	b := m["binding"].(map[string]any)
	b["salt"] = flip(b["salt"].(string))
	err = draw.Verify(redigest(t, m), roots)
	assert.ErrorIs(t, err, draw.ErrProof)
	assert.Contains(t, err.Error(), `"nonce"`)

	m = load(jss[0])
	m["binding"].(map[string]any)["params"] = "provenrand-draw/1;kind=pick;n=5;k=3"
	assert.ErrorIs(t, draw.Verify(redigest(t, m), roots), draw.ErrInvalid, "params that are not the draw's")

	m = load(jss[0])
	other, err := draw.CommitEntrants([]string{"ada", "grace", "edsger", "barbara", "mallory"})
	require.NoError(t, err)
	m["entrants"] = map[string]any{"sha256": other.SHA256, "count": other.Count}
	assert.ErrorIs(t, draw.Verify(redigest(t, m), roots), draw.ErrInvalid, "another list of entrants")

	// Event b's job, seed and outputs, passed off as event a's (with a's
	// binding): every signature holds, the nonce is b's.
	a, bm := load(jss[0]), load(jss[1])
	for _, k := range []string{"entropy", "label", "proofs", "outputs"} {
		a[k] = bm[k]
	}
	err = draw.Verify(redigest(t, a), roots)
	assert.ErrorIs(t, err, draw.ErrProof)
	assert.Contains(t, err.Error(), `"nonce"`)

	// The binding removed, or event b's job passed off as a's without one:
	// the job is of a protocol that binds jobs to their request, so a
	// transcript of an event that shows no binding is refused once the
	// proof's signature is checked; without trust roots the report says the
	// binding was not checked.
	for _, m := range []map[string]any{load(jss[0]), load(jss[1])} {
		delete(m, "binding")
		m["event"] = "raffle-a"
		tr := redigest(t, m)
		_, err = draw.Check(tr, roots)
		assert.ErrorIs(t, err, draw.ErrProof)
		assert.Contains(t, err.Error(), `"nonce"`)
		assert.ErrorIs(t, draw.Verify(tr, roots), draw.ErrProof)
		rep, err := draw.Check(tr, draw.TrustRoots{})
		require.NoError(t, err)
		assert.False(t, rep.EventBound)
		require.NotEmpty(t, rep.Unchecked)
		assert.Contains(t, rep.Unchecked[len(rep.Unchecked)-1], "event binding")
	}

	// A binding on a draw that names no event.
	m = load(jss[0])
	delete(m, "event")
	assert.ErrorIs(t, draw.Verify(redigest(t, m), roots), draw.ErrInvalid)
}

// The same event drawn again with other parameters fails; with the same
// parameters it gives the same draw.
func TestEventRedrawWithOtherParametersFails(t *testing.T) {
	p, stop := simProvider(t, sim.New())
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, _, err := draw.Pick(ctx, p, 6, 49, draw.ForEvent("lotto"))
	require.NoError(t, err)
	again, _, err := draw.Pick(ctx, p, 6, 49, draw.ForEvent("lotto"))
	require.NoError(t, err)
	assert.Equal(t, first, again)
	_, _, err = draw.Pick(ctx, p, 5, 49, draw.ForEvent("lotto"))
	assert.ErrorIs(t, err, entropy.ErrEventParams)
}

// v1Job asks s for a job of size bytes without a nonce, as a client of
// protocol v1 would: s signs it in v1, binding it to no request. It returns
// the job's proof.
func v1Job(t *testing.T, s *sim.Server, size int) entropy.Proof {
	t.Helper()
	s.AddKey("sk-v1-client", 1<<20)
	req := httptest.NewRequest(http.MethodGet, httpsource.EntropyPath+"?size="+strconv.Itoa(size), nil)
	req.Header.Set("Authorization", "Bearer sk-v1-client")
	req.Header.Set("Accept", "application/json")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var j httpsource.JobResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &j))
	require.Empty(t, j.Nonce, "a job of protocol v1")
	data, err := base64.StdEncoding.DecodeString(j.Entropy)
	require.NoError(t, err)
	sig, err := base64.StdEncoding.DecodeString(j.Signature)
	require.NoError(t, err)
	require.True(t, httpsource.VerifySignature(s.PublicKey(), j.JobID, data, sig))
	return entropy.Proof{Scheme: evidence.SchemeReferenceV1, Source: sim.SourceName, JobID: j.JobID, Data: data, Signature: sig}
}

// TestEventJobOfProtocolV1Refused: an event draw whose job is of protocol
// v1, which binds no request, is refused once its signature is checked,
// as one of v2 without binding is. A service still signs a v1 job for any
// request without a nonce, so without this whoever drew could ask for v1
// jobs until one gave the result they wanted, and pass it off as the
// event's; no event draw ever took a v1 job.
func TestEventJobOfProtocolV1Refused(t *testing.T) {
	entrants := []string{"ada", "grace", "edsger", "barbara", "donald"}
	s := sim.New()
	p, stop := simProvider(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, tr, err := draw.Pick(ctx, p, 3, len(entrants), draw.ForEvent("raffle-v1"), draw.WithEntrants(entrants))
	require.NoError(t, err)
	js, err := json.Marshal(tr)
	require.NoError(t, err)
	v1 := v1Job(t, s, health.AptWindow)
	stop()

	var m map[string]any
	require.NoError(t, json.Unmarshal(js, &m))
	delete(m, "binding")
	b, err := json.Marshal(m)
	require.NoError(t, err)
	forged := reseed(t, b, []entropy.Span{{Source: sim.SourceName, JobID: v1.JobID, Length: draw.SeedSize}}, v1.Data[:draw.SeedSize])
	forged.Proofs = []entropy.Proof{v1}
	b, err = json.Marshal(forged)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &m))
	forged = redigest(t, m)

	roots := draw.TrustRoots{PublicKeys: map[string]ed25519.PublicKey{sim.SourceName: s.PublicKey()}}
	_, err = draw.Check(forged, roots)
	assert.ErrorIs(t, err, draw.ErrProof)
	assert.ErrorContains(t, err, `proof 0 "nonce"`)
	assert.ErrorIs(t, draw.Verify(forged, roots), draw.ErrProof)

	// The same job in a draw that names no event: checked, and reported as
	// binding no request.
	delete(m, "event")
	rep, err := draw.Check(redigest(t, m), roots)
	require.NoError(t, err)
	assert.True(t, rep.OriginChecked)
	assert.Contains(t, rep.Checks[len(rep.Checks)-1], "protocol v1 (it binds no request")
}

// An event whose job was drawn by ReadFor, bound to no parameters, cannot
// be drawn from: the draw fails rather than give a transcript that does
// not verify.
func TestDrawOfAnEventReadWithoutParametersFails(t *testing.T) {
	p, stop := simProvider(t, sim.New())
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := p.ReadFor(ctx, "lotto", make([]byte, draw.SeedSize))
	require.NoError(t, err)
	_, tr, err := draw.Pick(ctx, p, 6, 49, draw.ForEvent("lotto"))
	assert.ErrorIs(t, err, entropy.ErrEventParams)
	assert.Nil(t, tr)
}
