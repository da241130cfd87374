package remote

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/image/reference"
)

// Client talks to registries. Create it with New; it is safe for concurrent
// use and caches schemes and tokens per host.
type Client struct {
	opts Options

	mu    sync.Mutex
	hosts map[string]*hostState // by host[:port]
}

// New returns a Client for opts (defaults filled in).
func New(opts Options) *Client {
	opts.setDefaults()
	return &Client{opts: opts, hosts: map[string]*hostState{}}
}

// endpoint is one place to send a registry's requests: the registry itself
// or one of its mirrors.
type endpoint struct {
	registry string // name in references / for credentials: "docker.io", mirror host
	host     string // host[:port] to connect to
	scheme   string // fixed scheme, "" for HTTPS-first
	mirror   bool
}

func (e endpoint) String() string {
	if e.mirror {
		return "mirror " + e.host
	}
	return e.host
}

// hostState is what the Client learnt about a host.
type hostState struct {
	host     string
	cfg      RegistryConfig
	client   *http.Client
	cfgErr   error
	loopback bool

	mu        sync.Mutex
	scheme    string     // "https" or "http" once known
	challenge *challenge // last auth challenge, nil before any 401
	tokens    map[string]cachedToken
}

// upstreamHost maps a registry name to the host serving its API.
func upstreamHost(registry string) string {
	if registry == reference.DefaultRegistry {
		return "registry-1.docker.io"
	}
	return registry
}

func parseMirror(m string) (endpoint, error) {
	ep := endpoint{mirror: true}
	if strings.Contains(m, "://") {
		u, err := url.Parse(m)
		if err != nil {
			return ep, err
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return ep, fmt.Errorf("a mirror URL is http(s)://host[:port] with no path")
		}
		ep.scheme, ep.host = u.Scheme, u.Host
	} else {
		ep.host = strings.TrimSuffix(m, "/")
	}
	if _, err := reference.ParseRegistry(ep.host); err != nil {
		return ep, err
	}
	ep.registry = ep.host
	return ep, nil
}

// pullEndpoints returns the mirrors of registry (in order), then the
// registry itself.
func (c *Client) pullEndpoints(registry string) []endpoint {
	var eps []endpoint
	for _, m := range c.opts.Registries[registry].Mirrors {
		if ep, err := parseMirror(m); err == nil {
			eps = append(eps, ep)
		}
	}
	return append(eps, c.upstream(registry))
}

func (c *Client) upstream(registry string) endpoint {
	return endpoint{registry: registry, host: upstreamHost(registry)}
}

// state returns the hostState of ep, creating it.
func (c *Client) state(ep endpoint) *hostState {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.hosts[ep.host]; ok {
		return st
	}
	rc, ok := c.opts.Registries[ep.host]
	if !ok {
		rc = c.opts.Registries[ep.registry]
	}
	st := &hostState{host: ep.host, cfg: rc, loopback: reference.IsLoopback(ep.host), tokens: map[string]cachedToken{}}
	rt := c.opts.Transport
	if rt == nil {
		tlsCfg, err := c.opts.tlsConfig(ep.host, rc)
		if err != nil {
			st.cfgErr = err
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tlsCfg
		tr.ResponseHeaderTimeout = requestTimeout
		rt = tr
	}
	st.client = &http.Client{Transport: rt, CheckRedirect: checkRedirect}
	c.hosts[ep.host] = st
	return st
}

// checkRedirect drops Authorization when a redirect leaves the original
// host (blob downloads redirected to object storage) and bounds the chain.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if req.URL.Host != via[0].URL.Host || req.URL.Scheme != via[0].URL.Scheme {
		req.Header.Del("Authorization")
	}
	return nil
}

// allowHTTP reports whether plain HTTP may be used for a host.
func (st *hostState) allowHTTP() bool { return st.loopback || st.cfg.Insecure }

// mayCredential reports whether credentials may be sent to u.
func (st *hostState) mayCredential(u *url.URL) bool {
	if u.Scheme == "https" {
		return true
	}
	return reference.IsLoopback(u.Host) || (u.Host == st.host && st.cfg.Insecure)
}

// request is one API call.
type request struct {
	method string
	path   string   // "/v2/…?query", relative to the endpoint
	url    *url.URL // absolute URL (upload Location); overrides path
	header http.Header
	body   func() (io.ReadCloser, error) // nil for no body
	size   int64                         // body length, -1 unknown
	scopes []string
	stream bool // the caller bounds the response body read; no request timeout
	// replayable: the request may be sent again after a failure
	// (network error, 5xx): no body, or a body that body() re-creates.
	replayable bool
}

func (rq *request) target(scheme, host string) (*url.URL, error) {
	if rq.url != nil {
		return rq.url, nil
	}
	return url.Parse(scheme + "://" + host + rq.path)
}

// do sends rq to ep, handling the scheme, authentication, and retries of
// network errors, 5xx and 429. It returns any other response for the
// caller to interpret; errors are *Error.
func (c *Client) do(ctx context.Context, o opRef, ep endpoint, rq *request) (*http.Response, error) {
	st := c.state(ep)
	if st.cfgErr != nil {
		return nil, o.errorf(ErrInvalid, "fix the registry's TLS settings", "%s: %v", ep, st.cfgErr)
	}
	authTries := 0
	attempt := 0
	retries := c.opts.Retries
	if ep.mirror {
		retries = min(retries, 1) // fall back to the next endpoint quickly
	}
	backoff := c.opts.Backoff
	for {
		st.mu.Lock()
		scheme := st.scheme
		st.mu.Unlock()
		if ep.scheme != "" {
			scheme = ep.scheme
		} else if scheme == "" {
			scheme = "https"
		}
		u, err := rq.target(scheme, ep.host)
		if err != nil {
			return nil, o.errorf(ErrInvalid, "", "bad URL: %v", err)
		}
		resp, err := c.send(ctx, o, st, ep, rq, u)
		if err != nil {
			if ctx.Err() != nil {
				return nil, o.errorf(ErrUnavailable, "", "%s: %v", ep, ctx.Err())
			}
			var ae *Error
			if errors.As(err, &ae) {
				return nil, ae
			}
			if u.Scheme == "https" && ep.scheme == "" && rq.url == nil && isSchemeMismatch(err) {
				if st.allowHTTP() {
					st.mu.Lock()
					st.scheme = "http"
					st.mu.Unlock()
					continue
				}
				return nil, o.errorf(ErrUnavailable,
					fmt.Sprintf(`mark it "insecure" in the registries configuration to allow plain HTTP`),
					"%s answers plain HTTP to HTTPS", ep)
			}
			if attempt < retries && (rq.replayable || rq.body == nil) {
				attempt++
				if werr := sleep(ctx, backoff); werr != nil {
					return nil, o.errorf(ErrUnavailable, "", "%s: %v", ep, werr)
				}
				backoff = min(2*backoff, c.opts.MaxBackoff)
				continue
			}
			return nil, &Error{Op: o.op, Ref: o.ref, Kind: ErrUnavailable,
				Msg: fmt.Sprintf("cannot reach %s after %d attempts", ep, attempt+1), Err: err,
				Hint: "check the network and the registry address, or configure a mirror"}
		}
		if u.Scheme == "https" && rq.url == nil {
			st.mu.Lock()
			if st.scheme == "" {
				st.scheme = "https"
			}
			st.mu.Unlock()
		}
		switch {
		case resp.StatusCode == http.StatusUnauthorized:
			ch := parseChallenges(resp.Header.Values("WWW-Authenticate"))
			if authTries >= 2 || (authTries == 1 && (ch == nil || ch.scheme != "bearer")) {
				if user, secret, _ := c.creds(ctx, o, ep); user == "" && secret == "" {
					return nil, o.fromResponse(resp, ErrUnauthorized, ep.String()+" requires authentication and no credentials are configured",
						fmt.Sprintf("log in first: %s %s", c.opts.LoginCommand, ep.registry))
				}
				return nil, o.fromResponse(resp, ErrUnauthorized, ep.String()+" refused the credentials",
					fmt.Sprintf("check the credentials for %s (%s %s) and your access to the repository", ep.registry, c.opts.LoginCommand, ep.registry))
			}
			resp.Body.Close()
			authTries++
			if ch == nil {
				ch, err = c.ping(ctx, st, scheme)
				if err != nil {
					return nil, o.errorf(ErrUnauthorized, "", "%s: %v", ep, err)
				}
			}
			if err := c.authorize(ctx, o, st, ep, ch, rq.scopes, authTries > 1); err != nil {
				return nil, err
			}
			continue
		case resp.StatusCode == http.StatusForbidden:
			return nil, o.fromResponse(resp, ErrUnauthorized, ep.String()+" denied access",
				fmt.Sprintf("check your access to the repository on %s", ep.registry))
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			wait := backoff
			if ra, ok := retryAfter(resp.Header.Get("Retry-After")); ok {
				if ra > c.opts.MaxRetryAfter {
					return nil, o.fromResponse(resp, ErrUnavailable, fmt.Sprintf("%s asks to retry after %v", ep, ra), "try again later")
				}
				wait = ra
			}
			if attempt < retries && (rq.replayable || rq.body == nil) {
				resp.Body.Close()
				attempt++
				if werr := sleep(ctx, wait); werr != nil {
					return nil, o.errorf(ErrUnavailable, "", "%s: %v", ep, werr)
				}
				backoff = min(2*backoff, c.opts.MaxBackoff)
				continue
			}
			return nil, o.fromResponse(resp, ErrUnavailable, fmt.Sprintf("%s failing after %d attempts", ep, attempt+1),
				"try again later, or configure a mirror")
		}
		return resp, nil
	}
}

// send performs one HTTP exchange with the cached authorization.
func (c *Client) send(ctx context.Context, o opRef, st *hostState, ep endpoint, rq *request, u *url.URL) (*http.Response, error) {
	var cancel context.CancelFunc = func() {}
	if !rq.stream {
		ctx, cancel = context.WithTimeout(ctx, requestTimeout)
	}
	req, err := http.NewRequestWithContext(ctx, rq.method, u.String(), nil)
	if err != nil {
		cancel()
		return nil, err
	}
	for k, v := range rq.header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", c.opts.UserAgent)
	if rq.body != nil {
		body, err := rq.body()
		if err != nil {
			cancel()
			return nil, o.errorf(ErrInvalid, "", "opening content: %v", err)
		}
		req.Body = body
		req.ContentLength = rq.size
		if rq.size == 0 {
			req.Body = http.NoBody
			body.Close()
		}
	} else if rq.method == http.MethodPut || rq.method == http.MethodPost || rq.method == http.MethodPatch {
		req.Body = http.NoBody
		req.Header.Set("Content-Length", "0")
	}
	if u.Host == ep.host {
		if err := c.setAuth(ctx, o, st, ep, req, rq.scopes); err != nil {
			cancel()
			return nil, err
		}
	}
	resp, err := st.client.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

func isSchemeMismatch(err error) bool {
	if errors.Is(err, http.ErrSchemeMismatch) {
		return true
	}
	var rh tls.RecordHeaderError
	return errors.As(err, &rh) && string(rh.RecordHeader[:]) == "HTTP/"
}

func retryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// onEndpoints runs f on each pull endpoint of registry until one succeeds.
// The error is the upstream's, with the mirrors' failures noted.
func (c *Client) onEndpoints(ctx context.Context, registry string, f func(ep endpoint) error) error {
	eps := c.pullEndpoints(registry)
	var notes []string
	for i, ep := range eps {
		err := f(ep)
		if err == nil {
			return nil
		}
		if i == len(eps)-1 || ctx.Err() != nil {
			if len(notes) > 0 {
				var e *Error
				if errors.As(err, &e) {
					cp := *e
					cp.Hint = strings.TrimPrefix(cp.Hint+"; ", "; ") + "mirrors failed first: " + strings.Join(notes, "; ")
					return &cp
				}
			}
			return err
		}
		notes = append(notes, truncate(err.Error(), 300))
	}
	return nil // not reached: eps is never empty
}
