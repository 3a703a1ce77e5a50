package network

import (
	"errors"
	"net/netip"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/engine"
)

func TestPickSubnet(t *testing.T) {
	pfx := netip.MustParsePrefix
	tests := []struct {
		name   string
		taken  []netip.Prefix
		prefer netip.Prefix
		want   netip.Prefix
	}{
		{name: "empty", want: pfx("172.18.0.0/24")},
		{name: "skips taken", taken: []netip.Prefix{pfx("172.18.0.0/24"), pfx("172.18.1.0/24")}, want: pfx("172.18.2.0/24")},
		{name: "skips a covering route", taken: []netip.Prefix{pfx("172.16.0.0/12")}, want: pfx("10.89.0.0/24")},
		{name: "skips a host inside", taken: []netip.Prefix{pfx("172.18.0.7/32")}, want: pfx("172.18.1.0/24")},
		{name: "prefer free", prefer: pfx("172.17.0.0/16"), want: pfx("172.17.0.0/16")},
		{name: "prefer taken", prefer: pfx("172.17.0.0/16"), taken: []netip.Prefix{pfx("172.17.5.0/24")}, want: pfx("172.18.0.0/24")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pickSubnet(tc.taken, tc.prefer)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("pickSubnet = %s, want %s", got, tc.want)
			}
		})
	}
	if _, err := pickSubnet([]netip.Prefix{pfx("0.0.0.0/1"), pfx("128.0.0.0/1")}, netip.Prefix{}); !errors.Is(err, engine.ErrConflict) {
		t.Errorf("full pool: err = %v, want ErrConflict", err)
	}
}

func TestParseSubnet(t *testing.T) {
	tests := []struct {
		subnet, gateway string
		wantGW          string
		wantErr         bool
	}{
		{subnet: "10.1.2.0/24", wantGW: "10.1.2.1"},
		{subnet: "10.1.2.0/24", gateway: "10.1.2.254", wantGW: "10.1.2.254"},
		{subnet: "10.1.2.0/24", gateway: "10.1.2.255", wantErr: true},
		{subnet: "10.1.2.0/24", gateway: "10.1.3.1", wantErr: true},
		{subnet: "10.1.2.1/24", wantErr: true},
		{subnet: "10.1.2.0/31", wantErr: true},
		{subnet: "fd00::/64", wantErr: true},
		{subnet: "nonsense", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.subnet+"_"+tc.gateway, func(t *testing.T) {
			_, gw, err := parseSubnet(tc.subnet, tc.gateway)
			if tc.wantErr {
				if !errors.Is(err, engine.ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil || gw.String() != tc.wantGW {
				t.Fatalf("gateway = %s, %v; want %s", gw, err, tc.wantGW)
			}
		})
	}
}

func TestAllocate(t *testing.T) {
	n := &netRecord{Name: "n", Config: engine.NetworkConfig{Subnet: "10.9.0.0/29", Gateway: "10.9.0.1"}}
	used := map[netip.Addr]string{}
	var got []string
	for range 5 {
		a, err := allocate(n, used)
		if err != nil {
			t.Fatal(err)
		}
		used[a] = "c"
		got = append(got, a.String())
	}
	want := []string{"10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("allocations (-want +got):\n%s", diff)
	}
	if _, err := allocate(n, used); !errors.Is(err, engine.ErrConflict) {
		t.Errorf("full subnet: err = %v, want ErrConflict", err)
	}
	// A released address is not reused while others are free.
	delete(used, netip.MustParseAddr("10.9.0.3"))
	delete(used, netip.MustParseAddr("10.9.0.6"))
	if a, _ := allocate(n, used); a.String() != "10.9.0.3" {
		t.Errorf("after wrap: got %s, want 10.9.0.3 (the only free ones are .3 and .6, cursor wrapped)", a)
	}
}

func TestNormalizePorts(t *testing.T) {
	tests := []struct {
		name string
		in   []engine.PortBinding
		want []engine.PortBinding
		err  error
	}{
		{
			name: "defaults",
			in:   []engine.PortBinding{{HostPort: 8080, ContainerPort: 80}, {HostIP: "0.0.0.0", HostPort: 53, ContainerPort: 53, Protocol: "UDP"}},
			want: []engine.PortBinding{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}, {HostPort: 53, ContainerPort: 53, Protocol: "udp"}},
		},
		{
			name: "same port, two protocols",
			in:   []engine.PortBinding{{HostPort: 53, ContainerPort: 53, Protocol: "tcp"}, {HostPort: 53, ContainerPort: 53, Protocol: "udp"}},
			want: []engine.PortBinding{{HostPort: 53, ContainerPort: 53, Protocol: "tcp"}, {HostPort: 53, ContainerPort: 53, Protocol: "udp"}},
		},
		{name: "twice", in: []engine.PortBinding{{HostPort: 80, ContainerPort: 80}, {HostIP: "127.0.0.1", HostPort: 80, ContainerPort: 81}}, err: engine.ErrInvalid},
		{name: "bad protocol", in: []engine.PortBinding{{HostPort: 80, ContainerPort: 80, Protocol: "sctp"}}, err: engine.ErrInvalid},
		{name: "no container port", in: []engine.PortBinding{{HostPort: 80}}, err: engine.ErrInvalid},
		{name: "ipv6 host", in: []engine.PortBinding{{HostIP: "::1", HostPort: 80, ContainerPort: 80}}, err: engine.ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := normalizePorts(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolvConf(t *testing.T) {
	rc := parseResolvConf([]byte("# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2 # lan\nnameserver fe80::1%eth0\nsearch a.example b.example\noptions edns0 trust-ad\noptions ndots:2\n"))
	want := resolvConf{
		Nameservers: []netip.Addr{netip.MustParseAddr("127.0.0.53"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fe80::1%eth0")},
		Search:      []string{"a.example", "b.example"},
		Options:     []string{"edns0", "trust-ad", "ndots:2"},
	}
	if diff := cmp.Diff(want, rc, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	wantText := "search a.example b.example\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\noptions edns0 trust-ad ndots:2\n"
	if got := rc.String(); got != wantText {
		t.Errorf("String() =\n%s\nwant\n%s", got, wantText)
	}
}

func TestNames(t *testing.T) {
	if got := TableName("/var/lib/berth/"); got != "berth" {
		t.Errorf("TableName(default) = %q", got)
	}
	if a, b := TableName("/tmp/x"), TableName("/tmp/y"); a == b || len(a) != len("berth_")+8 {
		t.Errorf("TableName: %q, %q", a, b)
	}
	id := newID()
	if got := bridgeName(id); len(got) != 15 {
		t.Errorf("bridgeName = %q: want 15 characters", got)
	}
	if got := vethName(newID(), id); len(got) != 15 || got[:6] != "berthv" {
		t.Errorf("vethName = %q", got)
	}
	if got := macFor(netip.MustParseAddr("172.17.0.2")); got != "02:42:ac:11:00:02" {
		t.Errorf("macFor = %s", got)
	}
}

// TestAttachmentsOfAnotherBoot: attachments recorded before a reboot (or a
// file a power loss cut short) read as none.
func TestAttachmentsOfAnotherBoot(t *testing.T) {
	m, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d, err := m.load()
	if err != nil {
		t.Fatal(err)
	}
	d.Networks = []*netRecord{{ID: "n1", Name: "n", Config: engine.NetworkConfig{Subnet: "10.9.0.0/24", Gateway: "10.9.0.1"}}}
	d.Containers["c1"] = &ctrRecord{ID: "c1", Endpoints: []*endpoint{{Network: "n1", IP: netip.MustParseAddr("10.9.0.2")}}}
	d.RulesGen = 7
	if err := m.saveAll(d); err != nil {
		t.Fatal(err)
	}
	if d, err = m.load(); err != nil || len(d.Containers) != 1 || d.RulesGen != 7 || len(d.Networks) != 1 {
		t.Fatalf("reload = %+v, %v", d, err)
	}
	for name, content := range map[string]string{
		"another boot": `{"bootID": "not-this-one", "rulesGen": 7, "containers": {"c1": {"id": "c1"}}}`,
		"cut short":    "",
	} {
		if err := os.WriteFile(m.attachmentsPath(), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := m.load()
		if err != nil || len(d.Containers) != 0 || d.RulesGen != 0 || len(d.Networks) != 1 {
			t.Errorf("%s: load = %+v, %v; want the network and no attachment", name, d, err)
		}
	}
}
