package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kaudit/kaudit/cmd/kaudit/internal/dryrun"
	"github.com/kaudit/kaudit/plugin/chain"
)

// source reads stored documents back: add gets each with its location
// (index, stream, file:line).
type source interface {
	Describe() string
	Read(ctx context.Context, add func(loc string, body []byte)) error
}

type verifyFlags struct {
	url, index, query, user, password, apiKey, tenant, caFile string
	account, project                                          string
	insecure                                                  bool
	start, end                                                string
	since                                                     time.Duration
	pageSize                                                  int
}

func cmdVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kaudit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pubPath := fs.String("public-key", "", "the chain's public key `FILE` (kaudit keygen's NAME.pub)")
	from := fs.String("from", "", "where to read: elasticsearch (OpenSearch too), loki, victorialogs, or file")
	asJSON := fs.Bool("json", false, "write the report as JSON")
	maxLines := fs.Int("max-findings", 20, "findings listed per kind in the text report (0: all; --json lists all)")
	var f verifyFlags
	fs.StringVar(&f.url, "url", "", "backend base `URL` (elasticsearch: http://127.0.0.1:9200, loki: http://127.0.0.1:3100, victorialogs: http://127.0.0.1:9428)")
	fs.StringVar(&f.index, "index", "kaudit-*", "elasticsearch: index `PATTERN` (events and manifests; a data stream name works)")
	fs.StringVar(&f.query, "query", "", "loki: stream selector (default {job=\"kaudit\"}); victorialogs: LogsQL filter (default *)")
	fs.StringVar(&f.user, "user", "", "HTTP basic auth user")
	fs.StringVar(&f.password, "password", "", "HTTP basic auth password (or $KAUDIT_PASSWORD)")
	fs.StringVar(&f.apiKey, "api-key", "", "elasticsearch: API key (or $KAUDIT_API_KEY)")
	fs.StringVar(&f.tenant, "tenant", "", "loki: X-Scope-OrgID")
	fs.StringVar(&f.account, "account-id", "", "victorialogs: AccountID header")
	fs.StringVar(&f.project, "project-id", "", "victorialogs: ProjectID header")
	fs.StringVar(&f.caFile, "ca-file", "", "CA bundle `FILE` for https")
	fs.BoolVar(&f.insecure, "insecure", false, "do not verify the server's TLS certificate")
	fs.StringVar(&f.start, "start", "", "loki: range start (RFC 3339; default --since before --end)")
	fs.StringVar(&f.end, "end", "", "loki: range end (RFC 3339; default now)")
	fs.DurationVar(&f.since, "since", 30*24*time.Hour, "loki: range length when --start is not set")
	fs.IntVar(&f.pageSize, "page-size", 1000, "documents per request")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: kaudit verify --public-key K --from elasticsearch|loki|victorialogs|file [flags] [FILE...]

Reads events and signed manifests back and reports, per node and epoch: missing
manifests, listed events deleted or altered, events listed by no manifest, and
unsigned or broken chains. Exit status 0: clean, 1: findings, 2: usage, 3: error.
--from file reads JSON lines, one stored document per line (the stdout sink's path,
or an export), gzip allowed.`)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return exitUsage
	}
	if *pubPath == "" || *from == "" {
		fmt.Fprintln(stderr, "kaudit verify: --public-key and --from are required")
		fs.Usage()
		return exitUsage
	}
	pub, err := chain.LoadPublicKey(*pubPath)
	if err != nil {
		fmt.Fprintf(stderr, "kaudit verify: --public-key %s: %v\n", *pubPath, err)
		return exitUsage
	}
	if f.password == "" {
		f.password = os.Getenv("KAUDIT_PASSWORD")
	}
	if f.apiKey == "" {
		f.apiKey = os.Getenv("KAUDIT_API_KEY")
	}
	var src source
	switch *from {
	case "file":
		if len(pos) == 0 {
			fmt.Fprintln(stderr, "kaudit verify: --from file needs FILE arguments")
			return exitUsage
		}
		inputs, err := dryrun.Expand(pos)
		if err != nil {
			fmt.Fprintf(stderr, "kaudit verify: %v\n", err)
			return exitUsage
		}
		src = fileSource{inputs}
	case "elasticsearch", "opensearch":
		src, err = newESSource(f)
	case "loki":
		src, err = newLokiSource(f)
	case "victorialogs":
		src, err = newVLSource(f)
	default:
		fmt.Fprintf(stderr, "kaudit verify: --from %q: want elasticsearch, loki, victorialogs or file\n", *from)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "kaudit verify: %v\n", err)
		return exitUsage
	}
	if *from != "file" && len(pos) > 0 {
		fmt.Fprintf(stderr, "kaudit verify: unexpected arguments %q\n", pos)
		return exitUsage
	}
	v := chain.NewVerifier(pub)
	if err := src.Read(context.Background(), v.Add); err != nil {
		fmt.Fprintf(stderr, "kaudit verify: reading %s: %v\n", src.Describe(), err)
		return exitError
	}
	rep := v.Report()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			Source string `json:"source"`
			KeyID  string `json:"key_id"`
			chain.Report
		}{src.Describe(), chain.KeyID(pub), rep})
	} else {
		writeVerifyText(stdout, src.Describe(), chain.KeyID(pub), &rep, *maxLines)
	}
	if !rep.OK() {
		return exitFindings
	}
	return exitOK
}

func writeVerifyText(w io.Writer, src, keyID string, r *chain.Report, maxLines int) {
	fmt.Fprintf(w, "kaudit verify: %s, key %s\n", src, keyID)
	fmt.Fprintf(w, "read %d documents: %d events, %d manifests", r.Documents, r.Events, r.Manifests)
	if r.Duplicates > 0 {
		fmt.Fprintf(w, " (%d stored twice)", r.Duplicates)
	}
	fmt.Fprintln(w)
	if len(r.Epochs) > 0 {
		fmt.Fprintln(w)
		rows := [][]string{{"node", "instance", "epoch", "started", "manifests", "seq", "forks", "listed", "findings"}}
		for _, e := range r.Epochs {
			started := e.NewEpoch
			if started == "" {
				started = "(before range)"
			}
			if e.PrevEpoch != "" {
				started += " after " + e.PrevEpoch
			}
			rows = append(rows, []string{e.Node, e.Instance, e.Epoch, started, fmt.Sprint(e.Manifests),
				fmt.Sprintf("%d-%d", e.FirstSeq, e.LastSeq), fmt.Sprint(e.Forks), fmt.Sprint(e.Listed), fmt.Sprint(e.Findings)})
		}
		writeRows(w, "  ", rows)
	}
	fmt.Fprintln(w)
	if r.OK() {
		fmt.Fprintln(w, "clean: every listed event is stored with the listed bytes, every stored event is listed, every chain is complete and signed")
		return
	}
	byKind := map[string]int{}
	for _, f := range r.Findings {
		byKind[f.Kind]++
		if maxLines <= 0 || byKind[f.Kind] <= maxLines {
			fmt.Fprintf(w, "  %s\n", f.String())
		}
	}
	for k, n := range byKind {
		if maxLines > 0 && n > maxLines {
			fmt.Fprintf(w, "  … and %d more %s (--max-findings 0 or --json lists them all)\n", n-maxLines, k)
		}
	}
	var parts []string
	for _, k := range []string{chain.FindMissingManifest, chain.FindBrokenChain, chain.FindBadSignature, chain.FindUnsigned,
		chain.FindMalformedManifest, chain.FindMissingEvent, chain.FindAlteredEvent, chain.FindInsertedEvent} {
		if byKind[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, byKind[k]))
		}
	}
	fmt.Fprintf(w, "\n%d findings: %s\n", len(r.Findings), strings.Join(parts, ", "))
}

func writeRows(w io.Writer, indent string, rows [][]string) {
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		b.WriteString(indent)
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-len(c)+2))
			}
		}
		fmt.Fprintln(w, b.String())
	}
}
