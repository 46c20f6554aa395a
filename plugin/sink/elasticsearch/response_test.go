package elasticsearch

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseBulk(t *testing.T) {
	body := `{"took":3,"errors":true,"items":[
	 {"create":{"_index":"i","_id":"1","_version":1,"result":"created","_shards":{"total":2},"status":201,"_seq_no":0}},
	 {"create":{"_index":"i","_id":"2","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[2]: version conflict, document already exists (current version [1])","index":"i"}}},
	 {"create":{"_index":"i","_id":"3","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [sourceIPs] of type [ip] in document with id '3'","caused_by":{"type":"illegal_argument_exception","reason":"'nope' is not an IP string literal."}}}},
	 {"create":{"_index":"i","_id":"4","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution"}}},
	 {"index":{"_index":"i","_id":"5","status":500,"error":"old style"}}
	]}`
	var got []itemResult
	n, err := parseBulk(strings.NewReader(body), func(i int, r itemResult) {
		require.Equal(t, len(got), i)
		got = append(got, r)
	})
	require.NoError(t, err)
	require.Equal(t, 5, n)
	require.Equal(t, itemResult{Status: 201}, got[0])
	require.Equal(t, 409, got[1].Status)
	require.Equal(t, "version_conflict_engine_exception", got[1].ErrType)
	require.Equal(t, "mapper_parsing_exception", got[2].ErrType)
	require.Equal(t, "failed to parse field [sourceIPs] of type [ip] in document with id '3' (caused by illegal_argument_exception: 'nope' is not an IP string literal.)", got[2].Reason)
	require.Equal(t, 429, got[3].Status)
	require.Equal(t, itemResult{Status: 500, Reason: "old style"}, got[4])
}

func TestParseBulkMalformed(t *testing.T) {
	for _, body := range []string{``, `[]`, `{"items":[{"create":{"status":201}},`, `{"items":{}}`, `<html>`} {
		_, err := parseBulk(strings.NewReader(body), func(int, itemResult) {})
		require.Error(t, err, body)
	}
	n, err := parseBulk(strings.NewReader(`{"took":1,"errors":false,"items":[]}`), func(int, itemResult) {})
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestErrorSummary(t *testing.T) {
	require.Equal(t, "security_exception: missing authentication credentials",
		errorSummary([]byte(`{"error":{"root_cause":[],"type":"security_exception","reason":"missing authentication credentials"},"status":401}`)))
	require.Equal(t, "Too Many Requests", errorSummary([]byte("Too Many Requests\n")))
	require.Equal(t, "", errorSummary(nil))
	require.LessOrEqual(t, len(errorSummary([]byte(strings.Repeat("x", 5000)))), maxReason+4)
}
