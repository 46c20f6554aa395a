package elasticsearch

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPattern(t *testing.T) {
	ts := time.Date(2026, 3, 7, 5, 4, 9, 0, time.FixedZone("X", 3*3600)) // 02:04:09 UTC
	for _, tc := range []struct{ pat, want, glob string }{
		{"kaudit-%Y.%m.%d", "kaudit-2026.03.07", "kaudit-*.*.*"},
		{"kaudit-%Y.%m.%d.%H", "kaudit-2026.03.07.02", "kaudit-*.*.*.*"},
		{"a-%y%j", "a-26066", "a-*"},
		{"w-%G.%V-%u", "w-2026.10-6", "w-*.*-*"},
		{"t-%H%M%S", "t-020409", "t-*"},
		{"fixed", "fixed", "fixed"},
		{"p%%-%Y", "p%-2026", "p%-*"},
	} {
		p, err := CompilePattern(tc.pat)
		require.NoError(t, err, tc.pat)
		require.Equal(t, tc.want, p.Format(ts), tc.pat)
		require.Equal(t, tc.glob, p.Glob(), tc.pat)
	}
	for _, bad := range []string{"x-%Q", "x-%", "X-%Y", "_x", "a b"} {
		_, err := CompilePattern(bad)
		require.Error(t, err, bad)
	}
}

func TestIndexCache(t *testing.T) {
	p, _ := CompilePattern("k-%Y.%m.%d")
	var c indexCache
	d := time.Date(2026, 1, 1, 23, 59, 59, 0, time.UTC)
	require.Equal(t, "k-2026.01.01", c.name(p, d))
	require.Equal(t, "k-2026.01.02", c.name(p, d.Add(time.Second)))
	require.Equal(t, "k-1969.12.31", c.name(p, time.Unix(-1, 0)))
	h, _ := CompilePattern("k-%H")
	require.Equal(t, "k-23", c.name(h, d))
	require.Equal(t, "k-00", c.name(h, d.Add(time.Second)))
}
