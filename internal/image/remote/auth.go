package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// challenge is a parsed WWW-Authenticate challenge.
type challenge struct {
	scheme string            // "basic" or "bearer" (lower case)
	params map[string]string // keys lower case
}

// parseChallenges returns the first Bearer challenge in the headers, else
// the first Basic one, else nil.
func parseChallenges(values []string) *challenge {
	var basic *challenge
	for _, v := range values {
		for _, ch := range parseChallengeHeader(v) {
			switch ch.scheme {
			case "bearer":
				return ch
			case "basic":
				if basic == nil {
					basic = ch
				}
			}
		}
	}
	return basic
}

// parseChallengeHeader parses `Scheme k=v, k="quoted, \"v\"", Scheme2 …`.
func parseChallengeHeader(s string) []*challenge {
	var out []*challenge
	var cur *challenge
	i := 0
	skipSpace := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
			i++
		}
	}
	token := func() string {
		start := i
		for i < len(s) && !strings.ContainsRune(" \t,=\"", rune(s[i])) {
			i++
		}
		return s[start:i]
	}
	for {
		skipSpace()
		if i >= len(s) {
			return out
		}
		word := token()
		if word == "" { // stray character
			i++
			continue
		}
		j := i
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
			j++
		}
		if j < len(s) && s[j] == '=' && cur != nil {
			i = j + 1
			for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
				i++
			}
			var val string
			if i < len(s) && s[i] == '"' {
				i++
				var b strings.Builder
				for i < len(s) && s[i] != '"' {
					if s[i] == '\\' && i+1 < len(s) {
						i++
					}
					b.WriteByte(s[i])
					i++
				}
				i++ // closing quote
				val = b.String()
			} else {
				val = token()
			}
			cur.params[strings.ToLower(word)] = val
			continue
		}
		// token68 after a scheme (e.g. "Negotiate abc==") is ignored.
		if cur != nil && len(cur.params) == 0 && j < len(s) && s[j] == '=' {
			continue
		}
		cur = &challenge{scheme: strings.ToLower(word), params: map[string]string{}}
		out = append(out, cur)
	}
}

// ping asks GET /v2/ for the host's challenge.
func (c *Client) ping(ctx context.Context, st *hostState, scheme string) (*challenge, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+st.host+"/v2/", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", c.opts.UserAgent)
	resp, err := st.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /v2/: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	ch := parseChallenges(resp.Header.Values("WWW-Authenticate"))
	if ch == nil {
		return nil, fmt.Errorf("answered 401 without an authentication challenge (GET /v2/: %s)", resp.Status)
	}
	return ch, nil
}

type cachedToken struct {
	token   string
	expires time.Time
}

func scopeKey(scopes []string) string {
	s := append([]string(nil), scopes...)
	sort.Strings(s)
	return strings.Join(s, " ")
}

// setAuth adds the Authorization the host's last challenge calls for.
func (c *Client) setAuth(ctx context.Context, o opRef, st *hostState, ep endpoint, req *http.Request, scopes []string) error {
	st.mu.Lock()
	ch := st.challenge
	tok, ok := st.tokens[scopeKey(scopes)]
	st.mu.Unlock()
	if ch == nil {
		return nil
	}
	switch ch.scheme {
	case "basic":
		user, secret, err := c.creds(ctx, o, ep)
		if err != nil {
			return err
		}
		if user == "" {
			return nil // the 401 that follows explains
		}
		if !st.mayCredential(req.URL) {
			return o.errorf(ErrUnauthorized, `mark the registry "insecure" to allow it, or use HTTPS`,
				"refusing to send credentials for %s over plain HTTP", ep)
		}
		req.SetBasicAuth(user, secret)
	case "bearer":
		if !ok || time.Now().After(tok.expires) {
			if err := c.fetchToken(ctx, o, st, ep, ch, scopes); err != nil {
				return err
			}
			st.mu.Lock()
			tok = st.tokens[scopeKey(scopes)]
			st.mu.Unlock()
		}
		if tok.token != "" {
			req.Header.Set("Authorization", "Bearer "+tok.token)
		}
	}
	return nil
}

// authorize records a challenge after a 401 and prepares credentials for
// the retry. again is true after a token was already refused: the scopes the
// challenge names are added.
func (c *Client) authorize(ctx context.Context, o opRef, st *hostState, ep endpoint, ch *challenge, scopes []string, again bool) error {
	st.mu.Lock()
	st.challenge = ch
	st.mu.Unlock()
	switch ch.scheme {
	case "basic":
		user, _, err := c.creds(ctx, o, ep)
		if err != nil {
			return err
		}
		if user == "" {
			return o.errorf(ErrUnauthorized, fmt.Sprintf("log in first: %s %s", c.opts.LoginCommand, ep.registry),
				"%s requires authentication and no credentials are configured", ep)
		}
		return nil
	case "bearer":
		if again && ch.params["scope"] != "" {
			// The registry wants other scopes: fetch a token for the union,
			// stored under the request's scopes.
			extra := strings.Fields(ch.params["scope"])
			all := append(append([]string(nil), scopes...), extra...)
			return c.fetchTokenAs(ctx, o, st, ep, ch, all, scopes)
		}
		return c.fetchToken(ctx, o, st, ep, ch, scopes)
	}
	return o.errorf(ErrUnauthorized, "", "%s asks for unsupported authentication %q", ep, ch.scheme)
}

func (c *Client) creds(ctx context.Context, o opRef, ep endpoint) (string, string, error) {
	if c.opts.Credentials == nil {
		return "", "", nil
	}
	user, secret, err := c.opts.Credentials.Get(ctx, ep.registry)
	if err != nil {
		return "", "", &Error{Op: o.op, Ref: o.ref, Kind: ErrUnauthorized, Msg: "reading credentials for " + ep.registry, Err: err}
	}
	return user, secret, nil
}

func (c *Client) fetchToken(ctx context.Context, o opRef, st *hostState, ep endpoint, ch *challenge, scopes []string) error {
	return c.fetchTokenAs(ctx, o, st, ep, ch, scopes, scopes)
}

// fetchTokenAs gets a token for scopes from the challenge's realm and
// caches it under key.
func (c *Client) fetchTokenAs(ctx context.Context, o opRef, st *hostState, ep endpoint, ch *challenge, scopes, key []string) error {
	realm, err := url.Parse(ch.params["realm"])
	if err != nil || (realm.Scheme != "https" && realm.Scheme != "http") || realm.Host == "" {
		return o.errorf(ErrUnauthorized, "", "%s gave a bad token realm %q", ep, ch.params["realm"])
	}
	user, secret, err := c.creds(ctx, o, ep)
	if err != nil {
		return err
	}
	if (user != "" || secret != "") && !st.mayCredential(realm) {
		return o.errorf(ErrUnauthorized, `mark the registry "insecure" to allow it`,
			"refusing to send credentials for %s to plain-HTTP token realm %s", ep, realm.Host)
	}
	uniq := map[string]bool{}
	var sc []string
	for _, s := range scopes {
		if !uniq[s] {
			uniq[s] = true
			sc = append(sc, s)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var req *http.Request
	if user == "" && secret != "" {
		// Identity token: OAuth2 refresh-token grant.
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {secret},
			"service": {ch.params["service"]}, "client_id": {c.opts.UserAgent}}
		if len(sc) > 0 {
			form.Set("scope", strings.Join(sc, " "))
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, realm.String(), strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		q := realm.Query()
		if s := ch.params["service"]; s != "" {
			q.Set("service", s)
		}
		for _, s := range sc {
			q.Add("scope", s)
		}
		realm.RawQuery = q.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
		if err == nil && user != "" {
			req.SetBasicAuth(user, secret)
		}
	}
	if err != nil {
		return o.errorf(ErrUnauthorized, "", "token request: %v", err)
	}
	req.Header.Set("User-Agent", c.opts.UserAgent)
	client := st.client
	if realm.Host != st.host {
		client = c.state(endpoint{registry: realm.Host, host: realm.Host}).client
	}
	resp, err := client.Do(req)
	if err != nil {
		return &Error{Op: o.op, Ref: o.ref, Kind: ErrUnavailable, Msg: "token server " + realm.Host + " unreachable", Err: err,
			Hint: "check the network"}
	}
	if resp.StatusCode != http.StatusOK {
		kind := ErrUnauthorized
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			kind = ErrUnavailable
		}
		return o.fromResponse(resp, kind, fmt.Sprintf("token server %s refused a token for %s", realm.Host, ep),
			fmt.Sprintf("check the credentials for %s (%s %s)", ep.registry, c.opts.LoginCommand, ep.registry))
	}
	defer resp.Body.Close()
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return o.errorf(ErrUnauthorized, "", "token server %s: bad response: %v", realm.Host, err)
	}
	tok := body.Token
	if tok == "" {
		tok = body.AccessToken
	}
	if tok == "" {
		return o.errorf(ErrUnauthorized, "", "token server %s returned no token", realm.Host)
	}
	exp := time.Duration(body.ExpiresIn) * time.Second
	if exp <= 0 {
		exp = 60 * time.Second
	}
	// Renew a little early.
	exp -= min(exp/10, 10*time.Second)
	st.mu.Lock()
	st.tokens[scopeKey(key)] = cachedToken{token: tok, expires: time.Now().Add(exp)}
	st.mu.Unlock()
	return nil
}
