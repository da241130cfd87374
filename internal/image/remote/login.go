package remote

import (
	"context"
	"io"
	"net/http"
)

// CheckLogin checks that username and secret are accepted by registry (as
// `docker login` does: GET /v2/ with them, through a token service when
// the registry names one). It uses a copy of the client's settings with
// only these credentials.
func (c *Client) CheckLogin(ctx context.Context, registry, username, secret string) error {
	opts := c.opts
	opts.Credentials = StaticCredentials{registry: {username, secret}}
	cc := New(opts)
	o := opRef{"login", registry}
	resp, err := cc.do(ctx, o, cc.upstream(registry), &request{method: http.MethodGet, path: "/v2/", replayable: true})
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return nil
	}
	// fromResponse reads the registry's error body and closes it.
	return o.fromResponse(resp, nil, "GET /v2/", "check the user name and password")
}
