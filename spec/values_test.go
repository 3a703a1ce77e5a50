package spec

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseQuantity(t *testing.T) {
	tests := []struct {
		in      string
		want    Quantity
		wantErr string
	}{
		{in: "256Mi", want: 256 << 20},
		{in: "1Gi", want: 1 << 30},
		{in: "1.5Gi", want: 3 << 29},
		{in: "0.5Ki", want: 512},
		{in: ".5Ki", want: 512},
		{in: "500M", want: 500e6},
		{in: "1k", want: 1000},
		{in: "1E", want: 1e18},
		{in: "1e3", want: 1000},
		{in: "2E3", want: 2000},
		{in: "1048576", want: 1 << 20},
		{in: "+1Ki", want: 1024},
		{in: "0", want: 0},
		{in: "8Ei", wantErr: "out of range"},
		{in: "12 parsecs", wantErr: `invalid quantity "12 parsecs": want a number of bytes`},
		{in: "256m", wantErr: "did you mean 256Mi?"},
		{in: "1GB", wantErr: "did you mean 1Gi?"},
		{in: "1g", wantErr: "did you mean 1Gi?"},
		{in: "-1Gi", wantErr: "must not be negative"},
		{in: "0.5", wantErr: "not a whole number of bytes"},
		{in: "1e-3", wantErr: "not a whole number of bytes"},
		{in: "1e99", wantErr: "out of range"},
		{in: "1e", wantErr: "invalid quantity"},
		{in: "1..2Mi", wantErr: "invalid quantity"},
		{in: "Mi", wantErr: "invalid quantity"},
		{in: "", wantErr: "empty quantity"},
	}
	for _, tc := range tests {
		got, err := ParseQuantity(tc.in)
		checkParse(t, "ParseQuantity", tc.in, got, tc.want, err, tc.wantErr)
	}
}

func TestQuantityString(t *testing.T) {
	for _, tc := range []struct {
		q    Quantity
		want string
	}{{0, "0"}, {1, "1"}, {1024, "1Ki"}, {256 << 20, "256Mi"}, {3 << 29, "1536Mi"}, {1000, "1000"}, {1 << 60, "1Ei"}} {
		if got := tc.q.String(); got != tc.want {
			t.Errorf("Quantity(%d).String() = %q, want %q", int64(tc.q), got, tc.want)
		}
		if back, err := ParseQuantity(tc.q.String()); err != nil || back != tc.q {
			t.Errorf("ParseQuantity(%q) = %d, %v", tc.q.String(), back, err)
		}
	}
}

func TestParseCPUs(t *testing.T) {
	tests := []struct {
		in      string
		want    CPUs
		wantErr string
	}{
		{in: "0.5", want: 5e8},
		{in: ".25", want: 25e7},
		{in: "2", want: 2e9},
		{in: "500m", want: 5e8},
		{in: "1.000000001", want: 1e9 + 1},
		{in: "1e-1", want: 1e8},
		{in: "0", want: 0},
		{in: "-1", wantErr: "must not be negative"},
		{in: "half", wantErr: "invalid cpus"},
		{in: "0.5m", wantErr: "invalid cpus"},
		{in: "0.0000000001", wantErr: "at most 9 decimal places"},
		{in: "99999999999", wantErr: "out of range"},
		{in: ".inf", wantErr: "invalid cpus"},
		{in: "0x10", wantErr: "invalid cpus"},
	}
	for _, tc := range tests {
		got, err := ParseCPUs(tc.in)
		checkParse(t, "ParseCPUs", tc.in, got, tc.want, err, tc.wantErr)
	}
	for _, c := range []CPUs{5e8, 2e9, 1e9 + 1, 25e7} {
		if back, err := ParseCPUs(c.String()); err != nil || back != c {
			t.Errorf("ParseCPUs(%q) = %d, %v; want %d", c.String(), back, err, c)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    Duration
		wantErr string
	}{
		{in: "30s", want: Duration(30 * time.Second)},
		{in: "1m30s", want: Duration(90 * time.Second)},
		{in: "500ms", want: Duration(500 * time.Millisecond)},
		{in: "0", want: 0},
		{in: "5 minutes", wantErr: `invalid duration "5 minutes": want a number with a unit`},
		{in: "5", wantErr: "invalid duration"},
		{in: "1d", wantErr: "invalid duration"},
		{in: "-1s", wantErr: "must not be negative"},
	}
	for _, tc := range tests {
		got, err := ParseDuration(tc.in)
		checkParse(t, "ParseDuration", tc.in, got, tc.want, err, tc.wantErr)
	}
}

func TestParsePort(t *testing.T) {
	tcp := func(ip string, h, c uint16) PortMapping {
		return PortMapping{HostIP: ip, HostPort: h, ContainerPort: c, Protocol: ProtocolTCP}
	}
	tests := []struct {
		in      string
		want    []PortMapping
		wantErr string
	}{
		{in: "8080:80", want: []PortMapping{tcp("", 8080, 80)}},
		{in: "127.0.0.1:8080:80", want: []PortMapping{tcp("127.0.0.1", 8080, 80)}},
		{in: "0.0.0.0:8080:80", want: []PortMapping{tcp("", 8080, 80)}},
		{in: "[::1]:8080:80", want: []PortMapping{tcp("::1", 8080, 80)}},
		{in: "[::]:8080:80", want: []PortMapping{tcp("::", 8080, 80)}},
		{in: "53:53/udp", want: []PortMapping{{HostPort: 53, ContainerPort: 53, Protocol: ProtocolUDP}}},
		{in: "80:80/tcp", want: []PortMapping{tcp("", 80, 80)}},
		{in: "8000-8002:9000-9002", want: []PortMapping{tcp("", 8000, 9000), tcp("", 8001, 9001), tcp("", 8002, 9002)}},
		{in: "70000:80", wantErr: "port 70000 out of range"},
		{in: "8080:0", wantErr: "port 0 out of range"},
		{in: "99999999999999999999:80", wantErr: "out of range"},
		{in: "80", wantErr: "host port required"},
		{in: "8080:80/sctp", wantErr: `invalid protocol "sctp"`},
		{in: "8000-8010:8000-8005", wantErr: "differ in length"},
		{in: "8010-8000:8010-8000", wantErr: "end before start"},
		{in: "8080:", wantErr: "missing port number"},
		{in: "http:80", wantErr: `invalid port "http"`},
		{in: "::1:8080:80", wantErr: "in brackets"},
		{in: "[::1:8080:80", wantErr: "invalid port mapping"},
		{in: "[127.0.0.1]:8080:80", wantErr: "invalid host address"},
		{in: "1.2.3.4.5:8080:80", wantErr: "invalid host address"},
		{in: "a:b:c:d:e", wantErr: "in brackets"},
	}
	for _, tc := range tests {
		got, err := ParsePort(tc.in)
		checkParse(t, "ParsePort", tc.in, got, tc.want, err, tc.wantErr)
	}
	for _, s := range []string{"8080:80", "127.0.0.1:8080:80", "[::1]:8080:80", "53:53/udp"} {
		p, _ := ParsePort(s)
		if p[0].String() != s {
			t.Errorf("ParsePort(%q)[0].String() = %q", s, p[0].String())
		}
	}
}

func TestParseRestartPolicy(t *testing.T) {
	tests := []struct {
		in      string
		want    RestartPolicy
		wantErr string
	}{
		{in: "no", want: RestartPolicy{Name: RestartNo}},
		{in: "always", want: RestartPolicy{Name: RestartAlways}},
		{in: "unless-stopped", want: RestartPolicy{Name: RestartUnlessStopped}},
		{in: "on-failure", want: RestartPolicy{Name: RestartOnFailure}},
		{in: "on-failure:5", want: RestartPolicy{Name: RestartOnFailure, MaxRetries: 5}},
		{in: "on-failure:", wantErr: "whole number"},
		{in: "on-failure:-1", wantErr: "whole number"},
		{in: "on-failure:99999999999", wantErr: "out of range"},
		{in: "always:3", wantErr: "invalid restart policy"},
		{in: "Always", wantErr: "invalid restart policy"},
	}
	for _, tc := range tests {
		got, err := ParseRestartPolicy(tc.in)
		checkParse(t, "ParseRestartPolicy", tc.in, got, tc.want, err, tc.wantErr)
	}
}

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in      string
		want    Signal
		wantErr string
	}{
		{in: "SIGTERM", want: "SIGTERM"},
		{in: "TERM", want: "SIGTERM"},
		{in: "term", want: "SIGTERM"},
		{in: "15", want: "SIGTERM"},
		{in: "9", want: "SIGKILL"},
		{in: "sigquit", want: "SIGQUIT"},
		{in: "IOT", want: "SIGABRT"},
		{in: "SIGRTMIN", want: "SIGRTMIN"},
		{in: "RTMIN+3", want: "SIGRTMIN+3"},
		{in: "SIGRTMAX", want: "SIGRTMIN+30"},
		{in: "SIGRTMAX-2", want: "SIGRTMIN+28"},
		{in: "37", want: "SIGRTMIN+3"},
		{in: "0", wantErr: "out of range"},
		{in: "65", wantErr: "out of range"},
		{in: "32", wantErr: "out of range"},
		{in: "SIGFOO", wantErr: `unknown signal "SIGFOO"`},
		{in: "RTMIN+-1", wantErr: "unknown signal"},
		{in: "RTMIN+40", wantErr: "out of range"},
		{in: "", wantErr: "unknown signal"},
	}
	for _, tc := range tests {
		got, err := ParseSignal(tc.in)
		checkParse(t, "ParseSignal", tc.in, got, tc.want, err, tc.wantErr)
	}
}

func TestParseCapability(t *testing.T) {
	tests := []struct {
		in      string
		want    Capability
		wantErr string
	}{
		{in: "NET_ADMIN", want: "CAP_NET_ADMIN"},
		{in: "net_admin", want: "CAP_NET_ADMIN"},
		{in: "CAP_SYS_TIME", want: "CAP_SYS_TIME"},
		{in: "ALL", want: CapabilityAll},
		{in: "all", want: CapabilityAll},
		{in: "CAP_FLY", wantErr: `unknown capability "CAP_FLY"`},
	}
	for _, tc := range tests {
		got, err := ParseCapability(tc.in)
		checkParse(t, "ParseCapability", tc.in, got, tc.want, err, tc.wantErr)
	}
	if n := len(Capabilities()); n != 41 {
		t.Errorf("Capabilities() has %d, want 41", n)
	}
}

func TestParsePlatform(t *testing.T) {
	tests := []struct {
		in      string
		want    Platform
		wantErr string
	}{
		{in: "linux/amd64", want: Platform{OS: "linux", Architecture: "amd64"}},
		{in: "linux/arm64/v8", want: Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}},
		{in: "linux", wantErr: "want os/arch"},
		{in: "linux//v8", wantErr: "want os/arch"},
		{in: "Linux/AMD64", wantErr: "lowercase"},
		{in: "a/b/c/d", wantErr: "want os/arch"},
	}
	for _, tc := range tests {
		got, err := ParsePlatform(tc.in)
		checkParse(t, "ParsePlatform", tc.in, got, tc.want, err, tc.wantErr)
	}
}

func TestValidName(t *testing.T) {
	for _, s := range []string{"a", "web", "web-1", "my_app", "a.b", "0", strings.Repeat("a", 63)} {
		if !ValidName(s) {
			t.Errorf("ValidName(%q) = false", s)
		}
	}
	for _, s := range []string{"", "Web", "-web", "web-", "web_", ".a", "a b", "a/b", "ü", strings.Repeat("a", 64)} {
		if ValidName(s) {
			t.Errorf("ValidName(%q) = true", s)
		}
	}
}

func checkParse[T any](t *testing.T, fn, in string, got, want T, err error, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s(%q) error = %v, want one containing %q", fn, in, err, wantErr)
		}
		return
	}
	if err != nil {
		t.Errorf("%s(%q): %v", fn, in, err)
		return
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s(%q) (-want +got):\n%s", fn, in, diff)
	}
}
