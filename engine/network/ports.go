package network

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"berth.dev/berth/engine"
)

// Host ports handed out for bindings that ask for any (HostPort 0): the
// kernel's default ephemeral range, as Docker.
const ephemeralLow, ephemeralHigh = 32768, 60999

// CheckPorts fails with engine.ErrConflict when a host port of ports is
// published by another container or held by a process of the host, naming
// who holds it. It changes nothing.
func (m *Manager) CheckPorts(ctx context.Context, containerID string, ports []engine.PortBinding) error {
	ports, err := normalizePorts(ports)
	if err != nil || len(ports) == 0 {
		return err
	}
	d, err := m.load()
	if err != nil {
		return err
	}
	return checkPorts(ctx, d, containerID, ports)
}

func checkPorts(ctx context.Context, d *db, containerID string, ports []engine.PortBinding) error {
	for _, p := range ports {
		if p.HostPort == 0 {
			continue
		}
		if by := d.publisher(containerID, p); by != nil {
			who := shortID(by.ID)
			if by.Name != "" {
				who = by.Name + " (" + who + ")"
			}
			return fmt.Errorf("host port %s is already published by container %s: %w", portString(p), who, engine.ErrConflict)
		}
		if err := probePort(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// normalizePorts checks bindings and fills in defaults: protocol tcp, "" for
// all host addresses.
func normalizePorts(in []engine.PortBinding) ([]engine.PortBinding, error) {
	out := make([]engine.PortBinding, 0, len(in))
	for _, p := range in {
		p.Protocol = strings.ToLower(p.Protocol)
		switch p.Protocol {
		case "":
			p.Protocol = "tcp"
		case "tcp", "udp":
		default:
			return nil, fmt.Errorf("port %d: protocol %q: must be tcp or udp: %w", p.ContainerPort, p.Protocol, engine.ErrInvalid)
		}
		if p.ContainerPort == 0 {
			return nil, fmt.Errorf("port binding %s: container port 0: %w", portString(p), engine.ErrInvalid)
		}
		if p.HostIP != "" {
			ip, err := netip.ParseAddr(p.HostIP)
			switch {
			case err != nil:
				return nil, fmt.Errorf("port binding %s: host IP %q: %w", portString(p), p.HostIP, engine.ErrInvalid)
			case ip.IsUnspecified():
				p.HostIP = ""
			case !ip.Is4():
				return nil, fmt.Errorf("port binding %s: IPv6 host addresses: %w", portString(p), engine.ErrUnsupported)
			default:
				p.HostIP = ip.String()
			}
		}
		for _, q := range out {
			if p.HostPort != 0 && overlap(p, q) {
				return nil, fmt.Errorf("host port %s is published twice: %w", portString(p), engine.ErrInvalid)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

func overlap(a, b engine.PortBinding) bool {
	return a.Protocol == b.Protocol && a.HostPort == b.HostPort && (a.HostIP == "" || b.HostIP == "" || a.HostIP == b.HostIP)
}

// publisher returns the container other than self that publishes a port
// overlapping p.
func (d *db) publisher(self string, p engine.PortBinding) *ctrRecord {
	for id, c := range d.Containers {
		if id == self {
			continue
		}
		for _, q := range c.Ports {
			if overlap(p, q) {
				return c
			}
		}
	}
	return nil
}

// assignPorts gives bindings with HostPort 0 a free ephemeral host port.
func assignPorts(ctx context.Context, d *db, containerID string, ports []engine.PortBinding) error {
	for i := range ports {
		if ports[i].HostPort != 0 {
			continue
		}
		span := ephemeralHigh - ephemeralLow + 1
		start := rand.IntN(span)
		found := false
		for j := 0; j < span && !found; j++ {
			p := ports[i]
			p.HostPort = uint16(ephemeralLow + (start+j)%span)
			if d.publisher(containerID, p) != nil || clashes(ports, i, p) || probePort(ctx, p) != nil {
				continue
			}
			ports[i], found = p, true
		}
		if !found {
			return fmt.Errorf("port %d/%s: no free host port: %w", ports[i].ContainerPort, ports[i].Protocol, engine.ErrConflict)
		}
	}
	return nil
}

func clashes(ports []engine.PortBinding, self int, p engine.PortBinding) bool {
	for j, q := range ports {
		if j != self && q.HostPort != 0 && overlap(p, q) {
			return true
		}
	}
	return false
}

// probePort binds the host port for a moment: a process holding it makes
// that fail with EADDRINUSE. Published ports are DNAT rules, which hold no
// socket, so the port of another container is checked in the records.
func probePort(ctx context.Context, p engine.PortBinding) error {
	host := p.HostIP
	if host == "" {
		host = "0.0.0.0"
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(p.HostPort)))
	var lc net.ListenConfig
	var err error
	if p.Protocol == "udp" {
		var c net.PacketConn
		if c, err = lc.ListenPacket(ctx, "udp4", addr); err == nil {
			c.Close()
		}
	} else {
		var l net.Listener
		if l, err = lc.Listen(ctx, "tcp4", addr); err == nil {
			l.Close()
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EADDRINUSE):
		who := ""
		if h := portHolder(p.Protocol, p.HostPort); h != "" {
			who = " by " + h
		}
		return fmt.Errorf("host port %s is already in use%s: %w", portString(p), who, engine.ErrConflict)
	case errors.Is(err, unix.EADDRNOTAVAIL):
		return fmt.Errorf("port binding %s: %s is not an address of this host: %w", portString(p), p.HostIP, engine.ErrInvalid)
	default:
		return fmt.Errorf("port binding %s: %w", portString(p), err)
	}
}

// portHolder names the process that has a socket bound to port, if it can be
// found in /proc ("" if not).
func portHolder(proto string, port uint16) string {
	inodes := map[string]bool{}
	for _, f := range []string{proto, proto + "6"} {
		// thread-self, not self: the main thread may have been left in a
		// container's namespace by a locked goroutine that ended on it.
		file, err := os.Open(filepath.Join("/proc/thread-self/net", f))
		if err != nil {
			continue
		}
		s := bufio.NewScanner(file)
		s.Scan() // header
		for s.Scan() {
			fields := strings.Fields(s.Text())
			if len(fields) < 10 {
				continue
			}
			_, hexPort, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			v, err := strconv.ParseUint(hexPort, 16, 16)
			// TCP: only listeners (state 0A) hold a port against bind.
			if err != nil || uint16(v) != port || (proto == "tcp" && fields[3] != "0A") {
				continue
			}
			inodes["socket:["+fields[9]+"]"] = true
		}
		file.Close()
	}
	if len(inodes) == 0 {
		return ""
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd")
	for _, fdDir := range procs {
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !inodes[target] {
				continue
			}
			pid := filepath.Base(filepath.Dir(fdDir))
			comm, _ := os.ReadFile(filepath.Join("/proc", pid, "comm"))
			return fmt.Sprintf("process %s (pid %s)", strings.TrimSpace(string(comm)), pid)
		}
	}
	return ""
}

// portString is how Docker prints a binding: [ip:]hostPort/proto, and
// 0.0.0.0 for all addresses.
func portString(p engine.PortBinding) string {
	host := p.HostIP
	if host == "" {
		host = "0.0.0.0"
	}
	proto := p.Protocol
	if proto == "" {
		proto = "tcp"
	}
	return fmt.Sprintf("%s:%d/%s", host, p.HostPort, proto)
}
