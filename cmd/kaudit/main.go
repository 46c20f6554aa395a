// Command kaudit is kaudit's command-line tool:
//
//	kaudit dryrun --policy P [--critical F] [--detections D] [--compare P2] [--json] FILE...
//	kaudit keygen --out NAME
//	kaudit verify --public-key K --from elasticsearch|loki|victorialogs|file ...
//
// dryrun runs audit logs through the plugin's own pipeline and reports
// what a policy would keep, drop and strip; keygen writes the Ed25519 key
// pair for chain_key_file; verify checks the signed manifest chain
// against what the backend holds.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `usage: kaudit COMMAND [flags]

commands:
  dryrun   run audit logs through a policy, critical workloads and detections; report the effect
  keygen   write an Ed25519 key pair for chain_key_file (private) and verify (public)
  verify   check events and signed manifests read back from a backend

kaudit COMMAND -h shows the command's flags.
`

// exit statuses
const (
	exitOK       = 0
	exitFindings = 1 // verify found something
	exitUsage    = 2
	exitError    = 3
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "dryrun", "dry-run":
		return cmdDryrun(args[1:], stdout, stderr)
	case "keygen":
		return cmdKeygen(args[1:], stdout, stderr)
	case "verify":
		return cmdVerify(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "kaudit: unknown command %q\n%s", args[0], usage)
	return exitUsage
}

// parseArgs parses flags wherever they stand among the positional
// arguments (kaudit verify ... FILE --json) and returns the positionals.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		rest := fs.Args()
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil // after --, everything is positional
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
