package esconf

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
)

// The three event templates differ only in the body mapping type (and
// the description).
func TestVariantsAgree(t *testing.T) {
	bodies := map[string]string{
		Elasticsearch: `{"type": "flattened", "ignore_above": 8191, "depth_limit": 1000}`,
		OpenSearch:    `{"type": "flat_object"}`,
		Generic:       `{"type": "object", "enabled": false}`,
	}
	norm := func(name string) any {
		var v, body any
		require.NoError(t, json.Unmarshal(Template(name), &v), name)
		require.NoError(t, json.Unmarshal([]byte(bodies[name]), &body))
		n := 0
		var walk func(any) any
		walk = func(x any) any {
			if reflect.DeepEqual(x, body) {
				n++
				return "BODY"
			}
			if m, ok := x.(map[string]any); ok {
				for k, e := range m {
					m[k] = walk(e)
				}
			}
			return x
		}
		v = walk(v)
		require.Equal(t, 6, n, "%s: body mappings (user.extra, impersonatedUser.extra, responseStatus.details, requestObject, responseObject, annotations)", name)
		delete(v.(map[string]any), "_meta")
		return v
	}
	want := norm(Elasticsearch)
	require.Equal(t, want, norm(OpenSearch))
	require.Equal(t, want, norm(Generic))
	var dl map[string]any
	require.NoError(t, json.Unmarshal(Template(DeadLetter), &dl))
}
