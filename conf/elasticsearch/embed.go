// Package esconf holds the index templates the elasticsearch sink installs
// (embedded, so the .so needs no files at run time). Each JSON file is a
// complete composable index template body usable as is with
// `PUT _index_template/kaudit`; the sink replaces index_patterns and
// priority with what its settings need.
//
//   - elasticsearch.json: Elasticsearch 7.3+ (bodies as flattened)
//   - opensearch.json: OpenSearch 2.7+ (bodies as flat_object)
//   - generic.json: anything else (bodies kept in _source only)
//   - dead-letter.json: the dead_letter_index (event as an unindexed string)
package esconf

import "embed"

//go:embed *.json
var files embed.FS

// Template returns the named file's bytes (panics on a name that is not
// embedded: a programming error).
func Template(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("esconf: " + err.Error())
	}
	return b
}

// Names of the templates.
const (
	Elasticsearch = "elasticsearch.json"
	OpenSearch    = "opensearch.json"
	Generic       = "generic.json"
	DeadLetter    = "dead-letter.json"
)
