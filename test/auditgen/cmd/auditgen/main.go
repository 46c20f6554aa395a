// Command auditgen writes a deterministic, realistic kube-apiserver audit
// log (JSON lines of audit.k8s.io/v1 Event) to stdout or a file.
//
//	go run ./test/auditgen/cmd/auditgen -n 2000 -seed 1 -profile mix > test/testdata/audit.log
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kaudit/kaudit/test/auditgen"
)

func main() {
	n := flag.Int("n", 2000, "number of events (lines) to generate")
	seed := flag.Int64("seed", 1, "random seed; the same flags always produce the same bytes")
	profile := flag.String("profile", auditgen.ProfileMix, `"mix" (realistic mix over 24h with security scenarios), "metadata" (~1 KB Metadata-level events only) or "large" (~20 KB RequestResponse events)`)
	start := flag.String("start", auditgen.DefaultStart.Format(time.RFC3339), "time of the first request (RFC 3339)")
	out := flag.String("o", "", "write to this file instead of stdout")
	list := flag.Bool("eventlist", false, "write one audit.k8s.io/v1 EventList JSON body (as the webhook backend sends it) instead of JSON lines")
	stats := flag.Bool("stats", false, "print counts by stage/verb/user type/level/code/resource as Markdown to stderr")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: auditgen [flags]\n\nGenerates kube-apiserver audit events (audit.k8s.io/v1 Event, one JSON per line).\n\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	st, err := time.Parse(time.RFC3339Nano, *start)
	if err != nil {
		fmt.Fprintln(os.Stderr, "auditgen: -start:", err)
		os.Exit(2)
	}
	switch *profile {
	case auditgen.ProfileMix, auditgen.ProfileMetadata, auditgen.ProfileLarge:
	default:
		fmt.Fprintf(os.Stderr, "auditgen: unknown -profile %q\n", *profile)
		os.Exit(2)
	}
	o := auditgen.Options{Seed: *seed, Events: *n, Start: st, Profile: *profile}
	events := auditgen.GenerateEvents(o)
	lines := auditgen.Generate(o)

	var w io.Writer = os.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "auditgen:", err)
			os.Exit(1)
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriter(w)
	if *list {
		bw.Write(auditgen.EventList(events...))
		bw.WriteByte('\n')
	} else {
		for _, l := range lines {
			bw.Write(l)
			bw.WriteByte('\n')
		}
	}
	if err := bw.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "auditgen:", err)
		os.Exit(1)
	}
	if *stats {
		fmt.Fprint(os.Stderr, auditgen.ComputeStats(events, lines).Markdown())
	}
}
