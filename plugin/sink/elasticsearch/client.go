package elasticsearch

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// client sends requests to the configured hosts, round-robin, trying the
// next host when one cannot be reached. Connections are kept alive and
// reused. It never puts a credential in an error or a log line.
type client struct {
	hosts   []*url.URL
	prefix  string
	http    *http.Client
	timeout time.Duration
	auth    authorizer
	next    atomic.Uint64
}

// authorizer sets the Authorization header.
type authorizer interface {
	apply(h http.Header) error
	// who names the identity for log lines: a user name or the method,
	// never the secret.
	who() string
}

type noAuth struct{}

func (noAuth) apply(http.Header) error { return nil }
func (noAuth) who() string             { return "no credentials" }

type basicAuth struct{ header, user string }

func (a basicAuth) apply(h http.Header) error { h.Set("Authorization", a.header); return nil }
func (a basicAuth) who() string               { return fmt.Sprintf("user %q", a.user) }

type apiKeyAuth struct{ header, id string }

func (a apiKeyAuth) apply(h http.Header) error { h.Set("Authorization", a.header); return nil }
func (a apiKeyAuth) who() string {
	if a.id != "" {
		return fmt.Sprintf("api_key id %q", a.id)
	}
	return "api_key"
}

// bearerAuth re-reads the token file when it changes (projected service
// account tokens rotate), checking at most once a second.
type bearerAuth struct {
	path string

	mu      sync.Mutex
	token   string
	mtime   time.Time
	checked time.Time
}

func (a *bearerAuth) apply(h http.Header) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if a.token == "" || now.Sub(a.checked) >= time.Second {
		a.checked = now
		st, err := os.Stat(a.path)
		if err != nil {
			if a.token == "" {
				return fmt.Errorf("bearer_token_file: %v", unwrapPath(err))
			}
		} else if a.token == "" || !st.ModTime().Equal(a.mtime) {
			b, err := os.ReadFile(a.path)
			if err != nil {
				if a.token == "" {
					return fmt.Errorf("bearer_token_file: %v", unwrapPath(err))
				}
			} else if tok := strings.TrimSpace(string(b)); tok != "" {
				a.token, a.mtime = tok, st.ModTime()
			} else if a.token == "" {
				return fmt.Errorf("bearer_token_file %s is empty", a.path)
			}
		}
	}
	h.Set("Authorization", "Bearer "+a.token)
	return nil
}

func (a *bearerAuth) who() string { return fmt.Sprintf("the token in %s", a.path) }

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// newAuthorizer picks the configured method.
func newAuthorizer(c *Config) authorizer {
	switch {
	case c.User != "":
		return basicAuth{
			header: "Basic " + base64.StdEncoding.EncodeToString([]byte(c.User+":"+c.Password)),
			user:   c.User,
		}
	case c.APIKey != "":
		// Elastic hands out "encoded" (base64 of id:key) keys; accept the
		// id:key form too.
		key, id := c.APIKey, ""
		if i := strings.IndexByte(key, ':'); i > 0 {
			id = key[:i]
			key = base64.StdEncoding.EncodeToString([]byte(key))
		} else if raw, err := base64.StdEncoding.DecodeString(key); err == nil {
			if i := bytes.IndexByte(raw, ':'); i > 0 {
				id = string(raw[:i])
			}
		}
		return apiKeyAuth{header: "ApiKey " + key, id: id}
	case c.BearerFile != "":
		return &bearerAuth{path: c.BearerFile}
	}
	return noAuth{}
}

func newClient(c *Config) *client {
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   min(c.Timeout, 10*time.Second),
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       c.TLS,
		TLSHandshakeTimeout:   min(c.Timeout, 10*time.Second),
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: c.Timeout,
		ExpectContinueTimeout: time.Second,
		// We compress request bodies ourselves and read responses as they
		// come; transparent response decompression would hide sizes.
		DisableCompression: true,
	}
	return &client{
		hosts:   c.Hosts,
		prefix:  c.PathPrefix,
		http:    &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		timeout: c.Timeout,
		auth:    newAuthorizer(c),
	}
}

// request is one call.
type request struct {
	method, path string
	body         []byte // sent as is
	ndjson, gzip bool   // content type; body already gzip'd
}

// transportError is a failure to get any HTTP answer from every host
// tried.
type transportError struct {
	host string
	err  error
}

func (e *transportError) Error() string { return fmt.Sprintf("%s: %v", e.host, e.err) }
func (e *transportError) Unwrap() error { return e.err }

// do sends req to the next host, failing over to the others while the
// error is a transport one, and calls fn with the first HTTP response.
// The response body is drained and closed after fn returns, so the
// connection goes back to the pool.
func (c *client) do(ctx context.Context, req request, fn func(host string, resp *http.Response) error) error {
	start := int(c.next.Add(1) - 1)
	var lastErr error
	for k := 0; k < len(c.hosts); k++ {
		h := c.hosts[(start+k)%len(c.hosts)]
		err := c.once(ctx, h, req, fn)
		var te *transportError
		if err == nil || !errors.As(err, &te) || ctx.Err() != nil {
			return err
		}
		lastErr = err
	}
	return lastErr
}

func (c *client) once(ctx context.Context, host *url.URL, req request, fn func(string, *http.Response) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hostName := host.Host
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	r, err := http.NewRequestWithContext(ctx, req.method, host.Scheme+"://"+host.Host+c.prefix+req.path, body)
	if err != nil {
		return err
	}
	if req.body != nil {
		if req.ndjson {
			r.Header.Set("Content-Type", "application/x-ndjson")
		} else {
			r.Header.Set("Content-Type", "application/json")
		}
		if req.gzip {
			r.Header.Set("Content-Encoding", "gzip")
		}
	}
	r.Header.Set("Accept", "application/json")
	r.Header.Set("User-Agent", "kaudit")
	if err := c.auth.apply(r.Header); err != nil {
		return err
	}
	resp, err := c.http.Do(r)
	if err != nil {
		return &transportError{host: hostName, err: cleanURLError(err, ctx, c.timeout)}
	}
	err = fn(hostName, resp)
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil && ctx.Err() != nil {
		// The timeout struck while reading the body.
		return &transportError{host: hostName, err: fmt.Errorf("reading the response: %w", cleanURLError(err, ctx, c.timeout))}
	}
	return err
}

// cleanURLError strips the *url.Error wrapper (method and URL are in our
// own messages already) and names timeouts plainly.
func cleanURLError(err error, ctx context.Context, timeout time.Duration) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return &timeoutError{timeout}
	}
	return err
}

// timeoutError is a request that got no (complete) answer in time.
type timeoutError struct{ d time.Duration }

func (e *timeoutError) Error() string { return fmt.Sprintf("no answer within %v (timeout)", e.d) }
func (e *timeoutError) Timeout() bool { return true }

// readBody reads a small response body (version, template answers).
func readBody(resp *http.Response) []byte {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return b
}

// hostList is the hosts for log lines.
func (c *client) hostList() string {
	s := make([]string, len(c.hosts))
	for i, h := range c.hosts {
		s[i] = h.Scheme + "://" + h.Host + c.prefix
	}
	return strings.Join(s, ",")
}
