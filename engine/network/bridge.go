package network

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/state"
)

// hostLockPath serializes subnet choices of all data roots on this host:
// they share one routing table.
const hostLockPath = "/run/lock/berth-network.lock"

// hostHandle opens a netlink handle in the host's network namespace (the
// namespace of every thread of this process: code that enters another one
// does it on a thread that dies afterwards).
func hostHandle() (*netlink.Handle, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return h, nil
}

// lockHost takes the host-wide subnet lock.
func lockHost(ctx context.Context) (*state.Lock, error) {
	if err := os.MkdirAll(filepath.Dir(hostLockPath), 0o755); err != nil {
		return nil, fmt.Errorf("host network lock: %w", err)
	}
	return state.Acquire(ctx, hostLockPath)
}

// hostPrefixes returns the destinations of the host's IPv4 routes (the
// default route excepted) and the subnets of its addresses: a new network
// must overlap none of them.
func hostPrefixes(h *netlink.Handle) ([]netip.Prefix, error) {
	var routes []netlink.Route
	var addrs []netlink.Addr
	// A dump that raced with a change is incomplete: read it again.
	err := retryDump(func() (err error) {
		routes, err = h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	if err := retryDump(func() (err error) { addrs, err = h.AddrList(nil, netlink.FAMILY_V4); return err }); err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var out []netip.Prefix
	for _, r := range routes {
		if p, ok := prefixOf(r.Dst); ok && p.Bits() > 0 {
			out = append(out, p)
		}
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok && !p.Addr().IsLoopback() {
			out = append(out, p.Masked())
		}
	}
	return out, nil
}

func retryDump(fn func() error) error {
	var err error
	for range 10 {
		if err = fn(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return err
		}
	}
	return err
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP.To4())
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits != 32 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}

// hostMTU is the MTU of the interface of the host's default route (1500
// without one): veths and bridges use it so that container traffic never
// needs fragmenting on the way out.
func hostMTU(h *netlink.Handle) int {
	var routes []netlink.Route
	err := retryDump(func() (err error) {
		routes, err = h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		return err
	})
	if err != nil {
		return 1500
	}
	for _, r := range routes {
		if p, ok := prefixOf(r.Dst); (r.Dst == nil || (ok && p.Bits() == 0)) && r.LinkIndex > 0 {
			if l, err := h.LinkByIndex(r.LinkIndex); err == nil && l.Attrs().MTU > 0 {
				return l.Attrs().MTU
			}
		}
	}
	return 1500
}

// ensureBridge makes n's bridge exist with its gateway address and returns
// it. A bridge that exists is left as it is.
func (m *Manager) ensureBridge(h *netlink.Handle, n *netRecord) (netlink.Link, error) {
	if l, err := h.LinkByName(n.Bridge); err == nil {
		if l.Attrs().Flags&net.FlagUp == 0 {
			if err := h.LinkSetUp(l); err != nil {
				return nil, fmt.Errorf("bridge %s: up: %w", n.Bridge, err)
			}
		}
		return l, nil
	}
	// A bridge that is gone (a reboot) comes back only if nothing on the
	// host took its subnet meanwhile, such as a network of another data
	// root, whose allocation cannot see a subnet routed nowhere: two bridges
	// on one subnet would each cut off the other's containers.
	if routed, err := hostPrefixes(h); err == nil {
		for _, p := range routed {
			if p.Overlaps(n.subnet()) {
				return nil, fmt.Errorf("bridge %s of network %s: its subnet %s overlaps %s, routed on this host since the bridge went away; remove one of the two networks: %w",
					n.Bridge, n.Name, n.subnet(), p, engine.ErrConflict)
			}
		}
	}
	la := netlink.NewLinkAttrs()
	la.Name = n.Bridge
	la.MTU = hostMTU(h)
	la.Flags = net.FlagUp
	// A bridge takes the lowest MAC of its ports unless one is set: a fixed
	// one keeps containers' ARP entries for the gateway valid as ports come
	// and go.
	la.HardwareAddr = bridgeMAC(n.ID)
	br := &netlink.Bridge{LinkAttrs: la}
	if err := h.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("bridge %s: create: %w", n.Bridge, err)
	}
	// Which network of which data root this is, for whoever lists links, and
	// for sweepOrphans.
	if err := h.LinkSetAlias(br, bridgeAlias(n.Name, m.opts.table, m.root)); err != nil {
		return nil, fmt.Errorf("bridge %s: alias: %w", n.Bridge, err)
	}
	gw := &netlink.Addr{IPNet: &net.IPNet{IP: n.gateway().AsSlice(), Mask: net.CIDRMask(n.subnet().Bits(), 32)}}
	if err := h.AddrAdd(br, gw); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("bridge %s: address %s: %w", n.Bridge, gw.IPNet, err)
	}
	// Published ports on 127.0.0.1 are DNATed to the container and leave
	// through the bridge with a loopback source until masqueraded; the kernel
	// drops such packets unless route_localnet is set on the way out.
	if err := writeSysctl("net/ipv4/conf/"+n.Bridge+"/route_localnet", "1"); err != nil {
		return nil, err
	}
	return br, nil
}

// bridgeAlias is "berth network NAME table TABLE root ROOT", or without
// the root when that does not fit the 255 bytes of an alias.
func bridgeAlias(name, table, root string) string {
	a := fmt.Sprintf("berth network %s table %s", name, table)
	if withRoot := a + " root " + root; len(withRoot) <= 255 {
		return withRoot
	}
	return a
}

// parseBridgeAlias reads what bridgeAlias wrote.
func parseBridgeAlias(alias string) (table, root string, ok bool) {
	rest, ok := strings.CutPrefix(alias, "berth network ")
	if !ok {
		return "", "", false
	}
	_, rest, ok = strings.Cut(rest, " table ")
	if !ok {
		return "", "", false
	}
	table, root, ok = strings.Cut(rest, " root ")
	return table, root, ok && root != ""
}

// sweepOrphans deletes the bridges, and their tables, of data roots that no
// longer exist: a test or a user that deleted a data root without removing
// its networks first. A bridge qualifies only if its alias names its data
// root, that directory is gone, and no link is its port. It runs when a
// network is made (rare), under the host-wide lock.
func (m *Manager) sweepOrphans(h *netlink.Handle) {
	var links []netlink.Link
	if err := retryDump(func() (err error) { links, err = h.LinkList(); return err }); err != nil {
		return
	}
	ports := map[int]bool{}
	for _, l := range links {
		ports[l.Attrs().MasterIndex] = true
	}
	for _, l := range links {
		br, isBridge := l.(*netlink.Bridge)
		if !isBridge || !strings.HasPrefix(br.Name, bridgePrefix) || ports[br.Index] {
			continue
		}
		table, root, ok := parseBridgeAlias(br.Alias)
		if !ok || root == m.root {
			continue
		}
		if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		m.opts.log.Debug("removing the bridge of a data root that is gone", "bridge", br.Name, "root", root, "table", table)
		if err := deleteLink(h, br.Name); err == nil {
			_ = deleteTable(table)
		}
	}
}

// deleteLink removes a link by name; a missing one is not an error.
func deleteLink(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := h.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

func linkExists(h *netlink.Handle, name string) (bool, error) {
	_, err := h.LinkByName(name)
	if err == nil {
		return true, nil
	}
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return false, nil
	}
	return false, fmt.Errorf("link %s: %w", name, err)
}

// bridgeName and vethName are derived from IDs so that records name kernel
// objects before they exist. Both fit IFNAMSIZ (15 characters).
func bridgeName(networkID string) string { return "berth" + networkID[:10] }

func vethName(containerID, networkID string) string {
	sum := sha256.Sum256([]byte(containerID + "/" + networkID))
	return fmt.Sprintf("berthv%x", sum[:5])[:15]
}

func bridgeMAC(networkID string) net.HardwareAddr {
	sum := sha256.Sum256([]byte(networkID))
	return net.HardwareAddr{0x02, 0x42, sum[0], sum[1], sum[2], sum[3]}
}

// writeSysctl sets a /proc/sys value unless it has it already.
func writeSysctl(name, value string) error {
	p := filepath.Join("/proc/sys", name)
	if cur, err := os.ReadFile(p); err == nil && string(bytes.TrimSpace(cur)) == value {
		return nil
	}
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sysctl %s: %w", name, err)
		}
		return fmt.Errorf("sysctl %s=%s: %w", name, value, err)
	}
	return nil
}
