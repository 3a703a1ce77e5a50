package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"berth.dev/berth/engine"
)

// session is an authenticated connection to one registry for a set of
// repositories: one ping and one token exchange, shared by every request of
// a pull or push.
type session struct {
	reg    name.Registry
	rt     http.RoundTripper // authenticated (a transport.Wrapper)
	client *http.Client
}

// baseTransport is shared by all sessions of a store so that connections are
// reused between the manifest, config and layer requests of one pull.
var baseTransport = sync.OnceValue(func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	// The read buffer stays small (the default 4 KiB): layers are read in
	// chunks larger than that, which bufio then reads straight from the
	// socket, so blob bytes are copied once, not twice.
	t.WriteBufferSize = 64 << 10
	return t
})

// newSession authenticates to reg for scopes (transport.PullScope or
// PushScope strings of repositories).
func (s *Store) newSession(ctx context.Context, reg name.Registry, scopes []string) (*session, error) {
	auth, err := authn.Resolve(ctx, s.opts.keychain, reg)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", reg, err)
	}
	var base http.RoundTripper = baseTransport()
	if s.opts.transport != nil {
		base = s.opts.transport
	}
	base = &policyTransport{inner: base, allowHTTP: s.insecureHost}
	if s.insecureHost(reg.RegistryStr()) {
		if ping := probeHTTP(ctx, base, reg.RegistryStr()); ping != nil {
			// ggcr pings HTTPS first and falls back to HTTP; for a
			// registry known to answer plain HTTP (it may: loopback or
			// listed as insecure) the TLS attempt is only cost, and the
			// ping itself is the question the probe just asked.
			base = &plainHTTPTransport{inner: base, host: reg.RegistryStr(), ping: ping}
		}
	}
	base = transport.NewRetry(base)
	rt, err := transport.NewWithContext(ctx, reg, auth, base, scopes)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", reg, classify(err))
	}
	return &session{
		reg: reg,
		rt:  rt,
		client: &http.Client{
			Transport:     rt,
			CheckRedirect: checkRedirect,
		},
	}, nil
}

// remoteOptions are the ggcr options of every remote call in a session.
func (ss *session) remoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithTransport(ss.rt)}
}

// url returns the URL of a registry API path ("/v2/...") in this session.
// The scheme is the registry's default: the session's transport rewrites it
// to the one its ping found working.
func (ss *session) url(path string) string {
	return ss.reg.Scheme() + "://" + ss.reg.RegistryStr() + path
}

// policyTransport refuses plain HTTP except to hosts allowHTTP accepts. The
// ping of ggcr tries HTTPS first and falls back to HTTP for names it deems
// local (which include RFC 1918 addresses); this transport narrows that to
// loopback and the configured insecure registries, redirects included.
type policyTransport struct {
	inner     http.RoundTripper
	allowHTTP func(hostport string) bool
}

func (p *policyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !p.allowHTTP(req.URL.Host) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("plain HTTP to %s refused: it is not a loopback address nor listed in insecure registries: %w", req.URL.Host, engine.ErrInvalid)
	}
	return p.inner.RoundTrip(req)
}

// probeHTTP returns hostport's answer to a plain-HTTP GET /v2/ when it
// answers as a registry (200, or 401 with its authentication challenge); a
// TLS server answers a plain request with 400.
func probeHTTP(ctx context.Context, rt http.RoundTripper, hostport string) *http.Response {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+hostport+"/v2/", nil)
	if err != nil {
		return nil
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		return nil
	}
	return resp
}

// plainHTTPTransport fails HTTPS requests to a registry that speaks plain
// HTTP at once, so that ggcr's ping falls back without a TLS handshake, and
// answers that ping (the first GET /v2/) with the probe's response instead
// of asking the registry again.
type plainHTTPTransport struct {
	inner  http.RoundTripper
	host   string
	ping   *http.Response
	pinged atomic.Bool
}

func (p *plainHTTPTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == p.host {
		switch {
		case req.URL.Scheme == "https":
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, fmt.Errorf("registry %s speaks plain HTTP", p.host)
		case req.Method == http.MethodGet && req.URL.Path == "/v2/" && req.Header.Get("Authorization") == "" && p.pinged.CompareAndSwap(false, true):
			return &http.Response{
				Status:     p.ping.Status,
				StatusCode: p.ping.StatusCode,
				Proto:      p.ping.Proto,
				ProtoMajor: p.ping.ProtoMajor,
				ProtoMinor: p.ping.ProtoMinor,
				Header:     p.ping.Header.Clone(),
				Body:       http.NoBody,
				Request:    req,
			}, nil
		}
	}
	return p.inner.RoundTrip(req)
}

// checkRedirect bounds redirects; the policy transport checks each hop's
// scheme.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

// classify wraps registry errors in engine error classes so that callers can
// decide without reading text.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case te.StatusCode == http.StatusNotFound:
			return fmt.Errorf("%w: %w", err, engine.ErrNotFound)
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden:
			// Registries answer 401 for repositories that do not exist
			// as well as for ones the credentials cannot read.
			return fmt.Errorf("%w (check the credentials in your Docker config file)", err)
		}
		for _, d := range te.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return fmt.Errorf("%w: %w", err, engine.ErrNotFound)
			}
		}
	}
	return err
}

// httpError turns a non-2xx response into an error with the registry's
// diagnostics.
func httpError(resp *http.Response, ok ...int) error {
	return classify(transport.CheckError(resp, ok...))
}
