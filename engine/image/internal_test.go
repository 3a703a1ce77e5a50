package image

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"berth.dev/berth/engine"
)

func TestInsecureHost(t *testing.T) {
	s := &Store{opts: options{insecure: []string{"registry.lan:5000", "10.1.0.0/16", "http://plain.example/"}}}
	tests := []struct {
		host string
		want bool
	}{
		{"127.0.0.1:5000", true},
		{"127.9.9.9", true},
		{"[::1]:5000", true},
		{"localhost:5000", true},
		{"registry.lan:5000", true},
		{"registry.lan:5001", false},
		{"10.1.2.3:5000", true},
		{"10.2.0.1:5000", false},
		{"192.168.1.10:5000", false}, // ggcr would allow RFC 1918 over HTTP; berth does not
		{"plain.example", true},
		{"index.docker.io", false},
	}
	for _, tc := range tests {
		if got := s.insecureHost(tc.host); got != tc.want {
			t.Errorf("insecureHost(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}

type recordTransport struct{ hosts []string }

func (r *recordTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.hosts = append(r.hosts, req.URL.Scheme+"://"+req.URL.Host)
	return nil, errors.New("not dialing in a test")
}

func TestPolicyTransport(t *testing.T) {
	s := &Store{}
	inner := &recordTransport{}
	pt := &policyTransport{inner: inner, allowHTTP: s.insecureHost}
	for _, u := range []string{"http://192.168.1.10:5000/v2/", "http://example.com/v2/"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		_, err := pt.RoundTrip(req)
		if err == nil || !strings.Contains(err.Error(), "plain HTTP") || !errors.Is(err, engine.ErrInvalid) {
			t.Errorf("%s: %v, want refused", u, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:5000/v2/", "https://example.com/v2/"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		pt.RoundTrip(req)
	}
	if diff := cmp.Diff([]string{"http://127.0.0.1:5000", "https://example.com"}, inner.hosts); diff != "" {
		t.Errorf("requests let through (-want +got):\n%s", diff)
	}
}

func TestCleanEntryPath(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "a/b", want: "a/b"},
		{in: "./a//b/", want: "a/b"},
		{in: "/etc/passwd", want: "etc/passwd"},
		{in: "a/../b", want: "b"},
		{in: ".", want: "."},
		{in: "./", want: "."},
		{in: "/", want: "."},
		{in: "", want: "."},
		{in: "//a/./b/..", want: "a"},
		{in: "a/b/../..", want: "."},
		{in: "bin/", want: "bin"},
		{in: "../a", bad: true},
		{in: "a/../../b", bad: true},
		{in: "/../etc", bad: true},
		{in: "a\x00b", bad: true},
	}
	for _, tc := range tests {
		got, err := cleanEntryPath(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("cleanEntryPath(%q) = %q, %v; want %q, bad=%v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestPlatformMatches(t *testing.T) {
	tests := []struct {
		want engine.Platform
		p    v1.Platform
		ok   bool
	}{
		{engine.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "amd64"}, true},
		{engine.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64"}, false},
		{engine.Platform{OS: "linux", Architecture: "arm64"}, v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, true},
		{engine.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, v1.Platform{OS: "linux", Architecture: "arm64"}, true},
		{engine.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, false},
		{engine.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "unknown", Architecture: "unknown"}, false},
	}
	for _, tc := range tests {
		if got := platformMatches(tc.want, &tc.p); got != tc.ok {
			t.Errorf("platformMatches(%v, %v) = %v, want %v", tc.want, tc.p, got, tc.ok)
		}
	}
}

func TestApplyChangesErrors(t *testing.T) {
	for _, c := range []string{"RUN x", "CMD", `CMD ["unterminated`, "ENV", "ENV =x", "EXPOSE 0", "EXPOSE 80/icmp", "EXPOSE 1-99999", `LABEL a="x`, "USER a b", "WORKDIR a b", "VOLUME"} {
		var cfg v1.Config
		if err := ApplyChanges(&cfg, []string{c}); !errors.Is(err, engine.ErrInvalid) {
			t.Errorf("change %q: %v, want ErrInvalid", c, err)
		}
	}
	var cfg v1.Config
	if err := ApplyChanges(&cfg, []string{"ENV A=1", "ENV A=2", `cmd echo "hi there"`, "EXPOSE 8000-8002/udp"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"A=2"}, cfg.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"/bin/sh", "-c", `echo "hi there"`}, cfg.Cmd); diff != "" {
		t.Errorf("cmd (-want +got):\n%s", diff)
	}
	if len(cfg.ExposedPorts) != 3 {
		t.Errorf("exposed %v", cfg.ExposedPorts)
	}
}
