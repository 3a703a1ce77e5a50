package spec

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Protocols of published ports.
const (
	ProtocolTCP = "tcp"
	ProtocolUDP = "udp"
)

// PortMapping publishes one container port on the host. Manifests write it
// as [IP:]HOST:CONTAINER[/PROTO] ("8080:80", "127.0.0.1:8080:80",
// "53:53/udp", "[::1]:8080:80"); a range ("8000-8010:8000-8010") expands to
// one PortMapping per port.
type PortMapping struct {
	// HostIP is the host address to listen on; "" means all addresses
	// (0.0.0.0 is written as "").
	HostIP        string
	HostPort      uint16
	ContainerPort uint16
	Protocol      string // ProtocolTCP or ProtocolUDP
}

// String returns the manifest form, [IP:]HOST:CONTAINER[/udp].
func (p PortMapping) String() string {
	var b strings.Builder
	if p.HostIP != "" {
		if strings.Contains(p.HostIP, ":") {
			b.WriteString("[" + p.HostIP + "]:")
		} else {
			b.WriteString(p.HostIP + ":")
		}
	}
	b.WriteString(strconv.Itoa(int(p.HostPort)))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(int(p.ContainerPort)))
	if p.Protocol != "" && p.Protocol != ProtocolTCP {
		b.WriteString("/" + p.Protocol)
	}
	return b.String()
}

// MarshalText writes the String form.
func (p PortMapping) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// Ports are a container's published ports: manifests write a list of
// [IP:]HOST:CONTAINER[/PROTO] strings, and a range becomes one PortMapping
// per port.
type Ports []PortMapping

// ParsePort parses one ports entry (see PortMapping); a range yields one
// mapping per port.
func ParsePort(s string) ([]PortMapping, error) {
	rest, proto := s, ProtocolTCP
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		rest, proto = s[:i], s[i+1:]
		if proto != ProtocolTCP && proto != ProtocolUDP {
			return nil, fmt.Errorf("invalid protocol %q: want tcp or udp", proto)
		}
	}
	var hostIP string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]:")
		if end < 0 {
			return nil, fmt.Errorf("invalid port mapping %q: want [IPv6]:HOST:CONTAINER", s)
		}
		hostIP, rest = rest[1:end], rest[end+2:]
		a, err := netip.ParseAddr(hostIP)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return nil, fmt.Errorf("invalid host address %q", hostIP)
		}
		hostIP = a.String()
	}
	parts := strings.Split(rest, ":")
	switch {
	case len(parts) == 1:
		return nil, fmt.Errorf("host port required in %q: write HOST:CONTAINER, e.g. 8080:%s", s, rest)
	case len(parts) == 3 && hostIP == "":
		a, err := netip.ParseAddr(parts[0])
		if err != nil || !a.Is4() {
			if strings.Count(rest, ":") > 2 {
				return nil, fmt.Errorf("invalid port mapping %q: put an IPv6 host address in brackets, [::1]:8080:80", s)
			}
			return nil, fmt.Errorf("invalid host address %q", parts[0])
		}
		if !a.IsUnspecified() {
			hostIP = a.String()
		}
		parts = parts[1:]
	case len(parts) != 2:
		if strings.Count(rest, ":") > 2 && hostIP == "" {
			return nil, fmt.Errorf("invalid port mapping %q: put an IPv6 host address in brackets, [::1]:8080:80", s)
		}
		return nil, fmt.Errorf("invalid port mapping %q: want [IP:]HOST:CONTAINER[/PROTO]", s)
	}
	hlo, hhi, err := parsePortRange(parts[0])
	if err != nil {
		return nil, err
	}
	clo, chi, err := parsePortRange(parts[1])
	if err != nil {
		return nil, err
	}
	if hhi-hlo != chi-clo {
		return nil, fmt.Errorf("port ranges %s and %s differ in length", parts[0], parts[1])
	}
	out := make([]PortMapping, 0, hhi-hlo+1)
	for i := 0; i <= hhi-hlo; i++ {
		out = append(out, PortMapping{HostIP: hostIP, HostPort: uint16(hlo + i), ContainerPort: uint16(clo + i), Protocol: proto})
	}
	return out, nil
}

func parsePortRange(s string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if lo, err = parsePortNumber(a); err != nil {
		return 0, 0, err
	}
	if !isRange {
		return lo, lo, nil
	}
	if hi, err = parsePortNumber(b); err != nil {
		return 0, 0, err
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("invalid port range %s: end before start", s)
	}
	return lo, hi, nil
}

func parsePortNumber(s string) (int, error) {
	if s == "" {
		return 0, errors.New("missing port number")
	}
	if strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %s out of range", s)
	}
	return n, nil
}
