package plugin

import "github.com/kaudit/kaudit/filter"

// docArena encodes the documents of one flush into a few large buffers
// instead of one growing slice per document. Each body is a slice of a
// buffer with its capacity capped at its length, so an append to one body
// can never write into the next. Buffers are never reused: a body some
// sink kept past Deliver stays valid (it only keeps its buffer alive).
type docArena struct {
	b     []byte
	block int
}

// Room kept free before encoding a document; a longer document grows its
// own copy (and the arena continues in it).
const docArenaMinFree = 16 << 10

func newDocArena(chunkBytes int) *docArena {
	// Documents are about as long as the audit JSON they come from, plus
	// the kaudit object; bodies stripped by the policy are shorter.
	block := max(chunkBytes+chunkBytes/4, 64<<10)
	return &docArena{block: block}
}

func (a *docArena) document(ev *filter.Event) filter.Document {
	if cap(a.b)-len(a.b) < docArenaMinFree {
		a.b = make([]byte, 0, a.block)
		a.block = max(a.block/4, 64<<10)
	}
	free := a.b[len(a.b):]
	d := filter.NewDocument(ev, free)
	n := len(d.Body)
	if n > 0 && cap(d.Body) == cap(free) {
		a.b = a.b[:len(a.b)+n] // encoded in place
	} else {
		a.b = d.Body // the document outgrew the buffer: continue after it in its new array
	}
	d.Body = d.Body[:n:n]
	return d
}
