// Package dryrun runs audit logs through the plugin's own pipeline
// (filter.NewPipeline, configured by config.Parse exactly as an [OUTPUT]
// section would be) and reports what a policy, critical workloads and
// detections would do to them.
package dryrun

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
)

// Input is one file to read ("-" is standard input).
type Input struct {
	Path string
	Size int64 // on disk (compressed size for .gz); 0 for stdin
}

// Expand turns the command line into inputs: a file, a glob, or a
// directory (its regular files, a rotated set). Files of a glob or a
// directory are read oldest first (modification time, then name), the
// order kube-apiserver's log rotation wrote them in.
func Expand(args []string) ([]Input, error) {
	var out []Input
	for _, a := range args {
		if a == "-" {
			out = append(out, Input{Path: "-"})
			continue
		}
		st, err := os.Stat(a)
		switch {
		case err == nil && !st.IsDir():
			out = append(out, Input{Path: a, Size: st.Size()})
			continue
		case err == nil:
			ents, err := os.ReadDir(a)
			if err != nil {
				return nil, err
			}
			var set []string
			for _, e := range ents {
				if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
					set = append(set, filepath.Join(a, e.Name()))
				}
			}
			if len(set) == 0 {
				return nil, fmt.Errorf("%s: no files in the directory", a)
			}
			out = append(out, oldestFirst(set)...)
			continue
		}
		matches, gerr := filepath.Glob(a)
		if gerr != nil || len(matches) == 0 {
			return nil, err // the Stat error: no such file
		}
		var set []string
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && st.Mode().IsRegular() {
				set = append(set, m)
			}
		}
		out = append(out, oldestFirst(set)...)
	}
	return out, nil
}

func oldestFirst(paths []string) []Input {
	type f struct {
		in  Input
		mod int64
	}
	fs := make([]f, 0, len(paths))
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		fs = append(fs, f{Input{Path: p, Size: st.Size()}, st.ModTime().UnixNano()})
	}
	sort.SliceStable(fs, func(i, j int) bool {
		if fs[i].mod != fs[j].mod {
			return fs[i].mod < fs[j].mod
		}
		return fs[i].in.Path < fs[j].in.Path
	})
	out := make([]Input, len(fs))
	for i := range fs {
		out[i] = fs[i].in
	}
	return out
}

// countingReader counts the bytes read from the file (compressed bytes
// for .gz), for the progress line.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// open returns the decompressed content of in; gzip is recognised by its
// magic bytes, whatever the name.
func open(in Input, read *atomic.Int64) (io.Reader, func() error, error) {
	var f *os.File
	if in.Path == "-" {
		f = os.Stdin
	} else {
		var err error
		if f, err = os.Open(in.Path); err != nil {
			return nil, nil, err
		}
	}
	br := bufio.NewReaderSize(countingReader{f, read}, 1<<20)
	magic, _ := br.Peek(2)
	if bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%s: %v", in.Path, err)
		}
		return bufio.NewReaderSize(zr, 1<<20), f.Close, nil
	}
	return br, f.Close, nil
}

// block is a run of whole lines of one input.
type block struct {
	seq  int
	file int
	// line is the number of the block's first line in its file (from 1).
	line int
	data []byte
}

const blockSize = 1 << 20

// readBlocks splits the inputs into blocks of whole lines and sends them
// in order; it closes out when done and returns the first read error.
func readBlocks(inputs []Input, read *atomic.Int64, out chan<- block, stop <-chan struct{}) error {
	defer close(out)
	seq := 0
	for fi, in := range inputs {
		r, closeFn, err := open(in, read)
		if err != nil {
			return err
		}
		line := 1
		var carry []byte
		for {
			buf := make([]byte, len(carry), blockSize+len(carry))
			copy(buf, carry)
			n, rerr := io.ReadFull(r, buf[len(carry):cap(buf)])
			buf = buf[:len(carry)+n]
			eof := rerr == io.EOF || rerr == io.ErrUnexpectedEOF
			if rerr != nil && !eof {
				closeFn()
				return fmt.Errorf("%s: %v", in.Path, rerr)
			}
			cut := len(buf)
			if !eof {
				cut = bytes.LastIndexByte(buf, '\n') + 1
				if cut == 0 { // a line longer than the block: keep reading
					carry = buf
					continue
				}
			}
			carry = append([]byte(nil), buf[cut:]...)
			if cut > 0 {
				select {
				case out <- block{seq: seq, file: fi, line: line, data: buf[:cut]}:
				case <-stop:
					closeFn()
					return nil
				}
				seq++
				line += bytes.Count(buf[:cut], []byte{'\n'})
			}
			if eof {
				break
			}
		}
		closeFn()
	}
	return nil
}
