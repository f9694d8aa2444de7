package drandsource

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPinnedChainsMatchVectors(t *testing.T) {
	vs := loadVectors(t)
	for name, pinned := range map[string]ChainInfo{"quicknet": Quicknet(), "default": Default()} {
		t.Run(name, func(t *testing.T) {
			v := vs[name]
			assert.Equal(t, v.chain, pinned, "pinned parameters differ from the vectors")
			assert.Equal(t, v.chain.Hash, pinned.ComputeHash(), "chain hash recomputed from the fields")
			require.NoError(t, pinned.Validate())
			byName, err := Chain(name)
			require.NoError(t, err)
			assert.Equal(t, pinned, byName)
			byHash, err := Chain(pinned.HashString())
			require.NoError(t, err)
			assert.Equal(t, pinned, byHash)
		})
	}
	_, err := Chain("testnet")
	require.Error(t, err)
}

func TestPinsAreCopies(t *testing.T) {
	q := Quicknet()
	q.PublicKey[0] ^= 0xff
	q.Hash[0] ^= 0xff
	q.GroupHash[0] ^= 0xff
	require.NoError(t, Quicknet().Validate(), "changing a returned ChainInfo must not change the pin")
	s := mustNew(t, Default(), []string{"https://relay.invalid"})
	c := s.Chain()
	c.PublicKey[0] ^= 0xff
	require.NoError(t, s.Chain().Validate())
}

func TestComputeHashBeaconID(t *testing.T) {
	d := Default()
	d.BeaconID = ""
	assert.Equal(t, Default().Hash, d.ComputeHash(), `beacon ID "" is the default chain and not hashed`)
	d.BeaconID = "other"
	assert.NotEqual(t, Default().Hash, d.ComputeHash(), "any other beacon ID is hashed")
	q := Quicknet()
	q.Period = 4 * time.Second
	assert.NotEqual(t, Quicknet().Hash, q.ComputeHash(), "period is hashed")
	q = Quicknet()
	q.GenesisTime++
	assert.NotEqual(t, Quicknet().Hash, q.ComputeHash(), "genesis is hashed")
}

func TestValidateRejects(t *testing.T) {
	cases := map[string]func(c *ChainInfo){
		"unknown scheme":      func(c *ChainInfo) { c.Scheme = "bls-unchained-on-g1" },
		"key of other scheme": func(c *ChainInfo) { c.PublicKey = Default().PublicKey },
		"zero period":         func(c *ChainInfo) { c.Period = 0 },
		"fractional period":   func(c *ChainInfo) { c.Period = 1500 * time.Millisecond },
		"no genesis":          func(c *ChainInfo) { c.GenesisTime = 0 },
		"no pinned hash":      func(c *ChainInfo) { c.Hash = nil },
		"hash mismatch":       func(c *ChainInfo) { c.Hash = Default().Hash },
		"field changed":       func(c *ChainInfo) { c.GroupHash = Default().GroupHash },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			c := Quicknet()
			edit(&c)
			require.Error(t, c.Validate())
			_, err := New(c, []string{"https://relay.invalid"})
			require.Error(t, err, "New refuses a chain that does not validate")
		})
	}
	c := Quicknet()
	c.Hash = Default().Hash
	require.ErrorIs(t, c.Validate(), ErrWrongChain)
}

func TestRoundTiming(t *testing.T) {
	q := Quicknet()
	genesis := time.Unix(q.GenesisTime, 0)
	assert.Equal(t, genesis, q.RoundTime(1))
	assert.Equal(t, genesis, q.RoundTime(0), "round 0 maps to genesis")
	assert.Equal(t, genesis.Add(122*3*time.Second), q.RoundTime(123))
	for _, r := range []uint64{1, 2, 123, 1_000_000, 40_000_000} {
		at := q.RoundTime(r)
		assert.Equal(t, r, q.RoundAt(at), "round %d is due at its time", r)
		assert.Equal(t, r, q.RoundAt(at.Add(2999*time.Millisecond)), "and until the next one")
		assert.Equal(t, r-1, q.RoundAt(at.Add(-time.Nanosecond)), "and not before")
		assert.Equal(t, r+1, q.FirstRoundAfter(at), "the first round after a round's time is the next one")
	}
	assert.Equal(t, uint64(0), q.RoundAt(genesis.Add(-time.Hour)), "no round before genesis")
	assert.Equal(t, uint64(1), q.FirstRoundAfter(genesis.Add(-time.Hour)))
	d := Default()
	assert.Equal(t, time.Unix(d.GenesisTime+1336*30, 0), d.RoundTime(1337))
	// Absurd rounds must not wrap around to the past.
	assert.False(t, q.RoundTime(^uint64(0)).Before(q.RoundTime(1<<40)))
}
