package e2e

import (
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// portSwitch serves a handler on a fixed loopback address that can be
// switched off (connections refused, as a backend that went away) and on
// again. The fault proxies of the end-to-end tests sit on one.
type portSwitch struct {
	t       testing.TB
	addr    string
	handler http.Handler

	mu  sync.Mutex
	srv *http.Server
}

// newPortSwitch listens on a free loopback port and serves h; the port is
// closed when the test ends.
func newPortSwitch(t testing.TB, h http.Handler) *portSwitch {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &portSwitch{t: t, addr: ln.Addr().String(), handler: h}
	p.serve(ln)
	t.Cleanup(p.Off)
	return p
}

// URL is the switch's base URL.
func (p *portSwitch) URL() string { return "http://" + p.addr }

func (p *portSwitch) serve(ln net.Listener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.srv = &http.Server{Handler: p.handler}
	go p.srv.Serve(ln)
}

// Off closes the port: connections are refused until On.
func (p *portSwitch) Off() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv != nil {
		p.srv.Close()
		p.srv = nil
	}
}

// On opens the same port again (retrying while the kernel still holds it).
func (p *portSwitch) On() {
	var ln net.Listener
	var err error
	for i := 0; i < 100; i++ {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(p.t, err)
	p.serve(ln)
}
