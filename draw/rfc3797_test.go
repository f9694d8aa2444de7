package draw

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rfcSources are the random sources of RFC 3797 section 6.
var rfcSources = []string{"9319", "2 5 12 8 10", "9 18 26 34 41 45"}

// TestRFC3797Example reproduces the table of RFC 3797 section 6: the key, the
// MD5 value of every row and the selection, pool of 25.
func TestRFC3797Example(t *testing.T) {
	key, err := RFC3797Key(rfcSources)
	require.NoError(t, err)
	assert.Equal(t, "9319./2.5.8.10.12./9.18.26.34.41.45./", key)

	table := []struct {
		md5      string
		selected int
	}{
		{"990DD0A5692A029A98B5E01AA28F3459", 17},
		{"3691E55CB63FCC37914430B2F70B5EC6", 7},
		{"FE814EDF564C190AC1D25753979990FA", 2},
		{"1863CCACEB568C31D7DDBDF1D4E91387", 16},
		{"F4AB33DF4889F0AF29C513905BE1D758", 25},
		{"13EAEB529F61ACFB9A29D0BA3A60DE4A", 23},
		{"992DB77C382CA2BDB9727001F3CDCCD9", 8},
		{"63AB4258ECA922976811C7F55C383CE7", 24},
		{"DFBC5AC97CED01B3A6E348E3CC63F40D", 19},
		{"31CB111C4A4EBE9287CEAE16FE51B909", 13},
		{"07FA46C122F164C215BBC72793B189A3", 22},
		{"AC52F8D75CCBE2E61AFEB3387637D501", 5},
		{"53306F73E14FC0B2FBF434218D25948E", 18},
		{"B5D1403501A81F9A47318BE7893B347C", 9},
		{"85B10B356AA06663EF1B1B407765100A", 1},
		{"3269E6CE559ABD57E2BA6AAB495EB9BD", 4},
	}
	want := make([]int, len(table))
	for i, row := range table {
		assert.Equal(t, row.md5, fmt.Sprintf("%X", rfc3797Digest(key, i)), "row %d", i+1)
		want[i] = row.selected
	}
	got, err := RFC3797(rfcSources, 25, 16)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	got, err = RFC3797(rfcSources, 25, 10)
	require.NoError(t, err)
	assert.Equal(t, []int{17, 7, 2, 16, 25, 23, 8, 24, 19, 13}, got)
}

func TestRFC3797KeyCanonicalisation(t *testing.T) {
	cases := []struct {
		in   []string
		want string
	}{
		{[]string{"0009319"}, "9319./"},
		{[]string{"0"}, "0./"},
		{[]string{"000"}, "0./"},
		{[]string{"10 9 100 1"}, "1.9.10.100./"},
		{[]string{"2, 5,12\t8\n10"}, "2.5.8.10.12./"},
		{[]string{"  7  ", "7 7"}, "7./7.7./"},
		{[]string{"99999999999999999999999 100000000000000000000000 5"}, "5.99999999999999999999999.100000000000000000000000./"},
	}
	for _, c := range cases {
		got, err := RFC3797Key(c.in)
		require.NoError(t, err, "%q", c.in)
		assert.Equal(t, c.want, got, "%q", c.in)
	}
}

func TestRFC3797Errors(t *testing.T) {
	for _, bad := range [][]string{nil, {}, {""}, {"  "}, {"1.5"}, {"-3"}, {"+3"}, {"12a"}, {"9319", "float 1.5"}} {
		_, err := RFC3797Key(bad)
		assert.ErrorIs(t, err, ErrRFC3797, "%q", bad)
		_, err = RFC3797(bad, 10, 1)
		assert.ErrorIs(t, err, ErrRFC3797, "%q", bad)
	}
	for _, c := range []struct{ pool, count int }{{0, 0}, {0, 1}, {-1, 1}, {65536, 1}, {10, 0}, {10, 11}, {10, -1}} {
		_, err := RFC3797(rfcSources, c.pool, c.count)
		assert.ErrorIs(t, err, ErrRFC3797, "pool %d count %d", c.pool, c.count)
	}
}

func TestRFC3797Edges(t *testing.T) {
	got, err := RFC3797(rfcSources, 1, 1)
	require.NoError(t, err)
	assert.Equal(t, []int{1}, got)

	// Selecting the whole pool gives a permutation.
	got, err = RFC3797(rfcSources, 25, 25)
	require.NoError(t, err)
	seen := map[int]bool{}
	for _, v := range got {
		require.True(t, v >= 1 && v <= 25)
		seen[v] = true
	}
	assert.Len(t, seen, 25)

	got, err = RFC3797([]string{strings.Repeat("1 ", 100)}, RFC3797MaxPool, 3)
	require.NoError(t, err)
	assert.Len(t, got, 3)
}

func ExampleRFC3797() {
	sources := []string{"9319", "2 5 12 8 10", "9 18 26 34 41 45"}
	key, _ := RFC3797Key(sources)
	sel, _ := RFC3797(sources, 25, 10)
	fmt.Println(key)
	fmt.Println(sel)
	// Output:
	// 9319./2.5.8.10.12./9.18.26.34.41.45./
	// [17 7 2 16 25 23 8 24 19 13]
}

// TestRFC3797OddInputsAndWholePool: leading zeros, extra blanks, commas and
// unsorted numbers canonicalise to the RFC's key; bad inputs are errors.
func TestRFC3797OddInputsAndWholePool(t *testing.T) {
	key, err := RFC3797Key([]string{" 09319 ", "12,  8 ,2\t10 005", "45 41 34 26 18 09"})
	require.NoError(t, err)
	assert.Equal(t, "9319./2.5.8.10.12./9.18.26.34.41.45./", key)
	key, err = RFC3797Key([]string{"000", "0 00"})
	require.NoError(t, err)
	assert.Equal(t, "0./0.0./", key)
	// Numbers longer than 64 bits sort numerically, not as text.
	key, err = RFC3797Key([]string{"100000000000000000000000 99 1000"})
	require.NoError(t, err)
	assert.Equal(t, "99.1000.100000000000000000000000./", key)

	for _, bad := range [][]string{nil, {}, {""}, {"   "}, {"1", ""}, {"-1"}, {"1.5"}, {"+3"}, {"1e3"}, {"x"}} {
		_, err := RFC3797Key(bad)
		assert.ErrorIs(t, err, ErrRFC3797, "%q", bad)
		_, err = RFC3797(bad, 10, 1)
		assert.ErrorIs(t, err, ErrRFC3797, "%q", bad)
	}
	for _, pc := range [][2]int{{0, 1}, {10, 0}, {10, 11}, {-1, 1}, {65536, 1}} {
		_, err := RFC3797([]string{"1"}, pc[0], pc[1])
		assert.ErrorIs(t, err, ErrRFC3797, "pool %d count %d", pc[0], pc[1])
	}
	// Selecting the whole pool gives a permutation of 1..pool.
	sel, err := RFC3797([]string{"9319"}, 25, 25)
	require.NoError(t, err)
	seen := map[int]bool{}
	for _, v := range sel {
		require.True(t, v >= 1 && v <= 25)
		seen[v] = true
	}
	assert.Len(t, seen, 25)
}
