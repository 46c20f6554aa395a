package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kaudit/kaudit/cmd/kaudit/internal/dryrun"
)

// setFlags collects repeated --set key=value.
type setFlags map[string]string

func (s setFlags) String() string { return "" }
func (s setFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	s[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(val)
	return nil
}

func cmdDryrun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kaudit dryrun", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c dryrun.Config
	fs.StringVar(&c.Policy, "policy", "", "audit policy `FILE` (the plugin's policy_file)")
	fs.StringVar(&c.Critical, "critical", "", "critical workloads `FILE` (critical_workloads_file)")
	fs.StringVar(&c.Detections, "detections", "", "detections `FILE` (detections_file)")
	fs.StringVar(&c.Compare, "compare", "", "a second policy `FILE`: group the events whose level changes")
	fs.IntVar(&c.Top, "top", 5, "(user, verb, resource) triples listed per rule")
	props := setFlags{}
	fs.Var(props, "set", "another [OUTPUT] property as `key=value` (repeatable), e.g. --set cluster=prod")
	asJSON := fs.Bool("json", false, "write the report as JSON")
	quiet := fs.Bool("quiet", false, "no progress line on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kaudit dryrun --policy P [--critical F] [--detections D] [--compare P2] [--json] FILE|DIR|GLOB|- ...\n\nReads audit logs (JSON lines, gzip, rotated sets, EventList bodies) and runs them through\nthe plugin's own pipeline, reporting what would be shipped, dropped and stripped.")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) == 0 {
		fmt.Fprintln(stderr, "kaudit dryrun: no input files (use - for standard input)")
		fs.Usage()
		return exitUsage
	}
	inputs, err := dryrun.Expand(pos)
	if err != nil {
		fmt.Fprintf(stderr, "kaudit dryrun: %v\n", err)
		return exitUsage
	}
	c.Inputs, c.Props = inputs, props
	if !*quiet {
		c.Progress = os.Stderr
		if stderr != os.Stderr {
			c.Progress = stderr
		}
	}
	rep, err := dryrun.Run(c)
	if err != nil {
		fmt.Fprintf(stderr, "kaudit dryrun: %v\n", err)
		return exitError
	}
	if *asJSON {
		if err := rep.WriteJSON(stdout); err != nil {
			fmt.Fprintf(stderr, "kaudit dryrun: %v\n", err)
			return exitError
		}
		return exitOK
	}
	rep.WriteText(stdout)
	return exitOK
}
