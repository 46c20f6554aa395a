package chain

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// State is what an instance persists between manifests: where its chain
// stands.
type State struct {
	Version  int       `json:"version"`
	Epoch    string    `json:"epoch"`
	Seq      uint64    `json:"seq"`
	Last     string    `json:"last"` // hash of manifest Seq
	KeyID    string    `json:"key_id"`
	Node     string    `json:"node"`
	Instance string    `json:"instance"`
	Updated  time.Time `json:"updated"`
}

const stateVersion = 1

// StatePath is the state file of an instance in dir. The name is derived
// from the instance (and node), so instances sharing a directory do not
// share a chain.
func StatePath(dir, node, instance string) string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
				return r
			}
			return '_'
		}, s)
	}
	return filepath.Join(dir, "chain-"+clean(node)+"-"+clean(instance)+".json")
}

// ReadState reads a state file; os.IsNotExist(err) when there is none.
func ReadState(path string) (State, error) {
	var s State
	data, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("%s: %v", path, err)
	}
	if s.Version != stateVersion || s.Epoch == "" || s.Seq == 0 || len(s.Last) != 64 {
		return s, fmt.Errorf("%s: not a version %d chain state", path, stateVersion)
	}
	return s, nil
}

// WriteState replaces the state file atomically: write a temporary file
// next to it, fsync it, rename it over the old one, fsync the directory.
// A crash leaves either the old or the new state, never a torn one.
func WriteState(path string, s State) error {
	s.Version = stateVersion
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(append(data, '\n')); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
