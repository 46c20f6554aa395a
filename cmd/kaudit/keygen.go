package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kaudit/kaudit/plugin/chain"
)

func cmdKeygen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kaudit keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "kaudit-chain", "write `NAME`.key (private, mode 0600) and NAME.pub")
	force := fs.Bool("force", false, "overwrite existing files")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kaudit keygen [--out NAME] [--force]\n\nWrites an Ed25519 key pair: NAME.key for the plugin's chain_key_file, NAME.pub for kaudit verify --public-key.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	base := strings.TrimSuffix(strings.TrimSuffix(*out, ".key"), ".pub")
	priv, pub, err := chain.GenerateKey()
	if err != nil {
		fmt.Fprintf(stderr, "kaudit keygen: %v\n", err)
		return exitError
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if *force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{base + ".key", priv, 0o600}, {base + ".pub", pub, 0o644}} {
		if err := writeFile(f.path, f.data, flags, f.mode); err != nil {
			if errors.Is(err, os.ErrExist) {
				err = fmt.Errorf("%s exists (use --force to overwrite)", f.path)
			}
			fmt.Fprintf(stderr, "kaudit keygen: %v\n", err)
			return exitError
		}
	}
	k, _ := chain.ParsePublicKey(pub)
	fmt.Fprintf(stdout, "private key: %s (chain_key_file; keep it on the nodes only)\npublic key:  %s (kaudit verify --public-key)\nkey id:      %s\n",
		base+".key", base+".pub", chain.KeyID(k))
	return exitOK
}

func writeFile(path string, data []byte, flags int, mode os.FileMode) error {
	f, err := os.OpenFile(path, flags, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
