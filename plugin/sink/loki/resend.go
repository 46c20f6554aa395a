package loki

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
)

// sentCache remembers the entries pushed recently (a 128-bit hash of
// stream, timestamp and line). Fluent Bit re-sends a whole chunk after
// FLB_RETRY, also the requests of it that were already accepted; Loki
// drops such copies itself, but servers that do not de-duplicate
// (VictoriaLogs) would store them twice. Entries found here are marked
// Delivered (Duplicate) without being sent again. The cache is a bounded
// ring: the oldest keys are forgotten first.
type sentCache struct {
	mu    sync.Mutex
	seed1 maphash.Seed
	seed2 maphash.Seed
	m     map[sentKey]struct{}
	ring  []sentKey
	pos   int
}

type sentKey [2]uint64

func newSentCache(size int) *sentCache {
	if size <= 0 {
		return nil
	}
	return &sentCache{seed1: maphash.MakeSeed(), seed2: maphash.MakeSeed(),
		m: make(map[sentKey]struct{}, size), ring: make([]sentKey, 0, size)}
}

func (c *sentCache) key(labels string, e *entry) sentKey {
	var ts [8]byte
	binary.LittleEndian.PutUint64(ts[:], uint64(e.ts))
	var k sentKey
	for i, seed := range []maphash.Seed{c.seed1, c.seed2} {
		var h maphash.Hash
		h.SetSeed(seed)
		h.WriteString(labels)
		h.WriteByte(0)
		h.Write(ts[:])
		h.Write(e.line)
		k[i] = h.Sum64()
	}
	return k
}

func (c *sentCache) has(k sentKey) bool {
	c.mu.Lock()
	_, ok := c.m[k]
	c.mu.Unlock()
	return ok
}

func (c *sentCache) add(keys []sentKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		if _, ok := c.m[k]; ok {
			continue
		}
		if len(c.ring) < cap(c.ring) {
			c.ring = append(c.ring, k)
		} else {
			delete(c.m, c.ring[c.pos])
			c.ring[c.pos] = k
			c.pos = (c.pos + 1) % len(c.ring)
		}
		c.m[k] = struct{}{}
	}
}
