package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kaudit/kaudit/cmd/kaudit/internal/dryrun"
)

// fileSource reads JSON lines, one stored document per line.
type fileSource struct{ inputs []dryrun.Input }

func (s fileSource) Describe() string {
	var names []string
	for _, in := range s.inputs {
		names = append(names, in.Path)
	}
	return "file " + strings.Join(names, ", ")
}

func (s fileSource) Read(_ context.Context, add func(string, []byte)) error {
	for _, in := range s.inputs {
		if err := readLines(in.Path, add); err != nil {
			return err
		}
	}
	return nil
}

func readLines(path string, add func(string, []byte)) error {
	var f *os.File
	if path == "-" {
		f = os.Stdin
	} else {
		var err error
		if f, err = os.Open(path); err != nil {
			return err
		}
		defer f.Close()
	}
	br := bufio.NewReaderSize(f, 1<<20)
	var r io.Reader = br
	if m, _ := br.Peek(2); bytes.Equal(m, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		r = zr
	}
	lr := bufio.NewReaderSize(r, 1<<20)
	for n := 1; ; n++ {
		line, err := lr.ReadBytes('\n')
		if l := bytes.TrimRight(line, "\r\n"); len(bytes.TrimSpace(l)) > 0 {
			add(fmt.Sprintf("%s:%d", path, n), l)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
