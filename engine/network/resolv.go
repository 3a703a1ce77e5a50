package network

import (
	"bufio"
	"bytes"
	"net"
	"net/netip"
	"os"
	"strings"
)

// systemdResolvConf lists the real upstreams when /etc/resolv.conf points at
// systemd-resolved's stub (127.0.0.53), which containers cannot reach.
const systemdResolvConf = "/run/systemd/resolve/resolv.conf"

// Public resolvers used only when the host offers none a container can
// reach (what Docker does too).
var fallbackNameservers = []netip.Addr{netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("8.8.4.4")}

// resolvConf is the part of a resolv.conf berth uses.
type resolvConf struct {
	Nameservers []netip.Addr
	Search      []string
	Options     []string
}

func parseResolvConf(data []byte) resolvConf {
	var rc resolvConf
	s := bufio.NewScanner(bytes.NewReader(data))
	for s.Scan() {
		line := s.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			// A scoped IPv6 address ("fe80::1%eth0") only works in the host's
			// namespace.
			if a, err := netip.ParseAddr(f[1]); err == nil {
				rc.Nameservers = append(rc.Nameservers, a)
			}
		case "search", "domain":
			rc.Search = f[1:] // the last one wins, as in glibc
		case "options":
			rc.Options = append(rc.Options, f[1:]...)
		}
	}
	return rc
}

func readResolvConf(path string) resolvConf {
	data, err := os.ReadFile(path)
	if err != nil {
		return resolvConf{}
	}
	return parseResolvConf(data)
}

func (rc resolvConf) String() string {
	var b strings.Builder
	if len(rc.Search) > 0 {
		b.WriteString("search " + strings.Join(rc.Search, " ") + "\n")
	}
	for _, ns := range rc.Nameservers {
		b.WriteString("nameserver " + ns.String() + "\n")
	}
	if len(rc.Options) > 0 {
		b.WriteString("options " + strings.Join(rc.Options, " ") + "\n")
	}
	return b.String()
}

// hostResolvConf is the configured host resolver configuration, with the
// systemd-resolved stub replaced by its upstreams where that is known.
func (m *Manager) hostResolvConf() resolvConf {
	rc := readResolvConf(m.opts.resolvConf)
	onlyStub := len(rc.Nameservers) > 0
	for _, ns := range rc.Nameservers {
		onlyStub = onlyStub && ns == netip.MustParseAddr("127.0.0.53")
	}
	if onlyStub && m.opts.resolvConf == "/etc/resolv.conf" {
		if up := readResolvConf(systemdResolvConf); len(up.Nameservers) > 0 {
			rc.Nameservers = up.Nameservers
		}
	}
	return rc
}

// containerResolvConf is a container's /etc/resolv.conf: the gateway of its
// first network with DNS as nameserver, or else the host's nameservers a
// container can reach (IPv4, not loopback); search and options from the host.
func (m *Manager) containerResolvConf(d *db, rec *ctrRecord) []byte {
	host := m.hostResolvConf()
	out := resolvConf{Search: host.Search, Options: host.Options}
	if n := m.dnsNetworkOf(d, rec); n != nil {
		out.Nameservers = []netip.Addr{n.gateway()}
		return []byte(out.String())
	}
	for _, ns := range host.Nameservers {
		if ns.Is4() && !ns.IsLoopback() {
			out.Nameservers = append(out.Nameservers, ns)
		}
	}
	if len(out.Nameservers) == 0 {
		out.Nameservers = fallbackNameservers
	}
	return []byte(out.String())
}

// upstreams are the servers the DNS helper forwards to: all of the host's,
// loopback ones included (the helper runs in the host's namespace).
func (m *Manager) upstreams() []string {
	var out []string
	for _, ns := range m.hostResolvConf().Nameservers {
		out = append(out, net.JoinHostPort(ns.String(), "53"))
	}
	return out
}

// dnsNetworkOf returns the first network of rec with DNS, or nil.
func (m *Manager) dnsNetworkOf(d *db, rec *ctrRecord) *netRecord {
	for _, ep := range rec.Endpoints {
		if n := d.networkByID(ep.Network); n != nil && n.Config.DNS {
			return n
		}
	}
	return nil
}

func (m *Manager) usesDNS(d *db, rec *ctrRecord) bool { return m.dnsNetworkOf(d, rec) != nil }
