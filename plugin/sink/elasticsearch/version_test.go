package elasticsearch

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseInfo(t *testing.T) {
	es := http.Header{"X-Elastic-Product": {"Elasticsearch"}}
	for _, tc := range []struct {
		name    string
		h       http.Header
		body    string
		product Product
		body2   string
		warn    bool
	}{
		{"es9", es, `{"cluster_name":"c","version":{"number":"9.1.0","build_flavor":"default"},"tagline":"You Know, for Search"}`, Elasticsearch, "flattened", false},
		{"es8", es, `{"version":{"number":"8.17.0"},"tagline":"You Know, for Search"}`, Elasticsearch, "flattened", false},
		{"es7.17", es, `{"version":{"number":"7.17.25"},"tagline":"You Know, for Search"}`, Elasticsearch, "flattened", false},
		{"es7.10 no header", nil, `{"version":{"number":"7.10.2"},"tagline":"You Know, for Search"}`, Elasticsearch, "flattened", false},
		{"es8 without header", nil, `{"version":{"number":"8.17.0"},"tagline":"You Know, for Search"}`, Unknown, "", true},
		{"es6", nil, `{"version":{"number":"6.8.0"},"tagline":"You Know, for Search"}`, Unknown, "", true},
		{"os2.19", nil, `{"version":{"distribution":"opensearch","number":"2.19.6"},"tagline":"The OpenSearch Project: https://opensearch.org/"}`, OpenSearch, "flat_object", false},
		{"os2.5", nil, `{"version":{"distribution":"opensearch","number":"2.5.0"}}`, OpenSearch, "", false},
		{"os1.3", nil, `{"version":{"distribution":"opensearch","number":"1.3.0"}}`, OpenSearch, "", false},
		{"os3", nil, `{"version":{"distribution":"opensearch","number":"3.1.0"}}`, OpenSearch, "flat_object", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := parseInfo(tc.h, []byte(tc.body))
			require.NoError(t, err)
			require.Equal(t, tc.product, info.Product)
			require.Equal(t, tc.body2, info.BodyType())
			require.Equal(t, tc.warn, info.Warning != "", info.Warning)
		})
	}
	_, err := parseInfo(nil, []byte(`<html>`))
	require.Error(t, err)
	_, err = parseInfo(nil, []byte(`{"ok":true}`))
	require.Error(t, err)
}
