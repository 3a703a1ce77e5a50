package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"berth.dev/berth/engine"
)

// AttachRequest asks to connect a container's sandbox to bridge networks.
type AttachRequest struct {
	ContainerID   string
	ContainerName string
	Hostname      string
	// NsPath is the sandbox from Sandbox.
	NsPath string
	// Endpoints in interface order: the first becomes eth0, and the first on
	// a non-internal network carries the default route.
	Endpoints []engine.EndpointConfig
	Ports     []engine.PortBinding
}

// Attachment is what a container gets from Attach.
type Attachment struct {
	Endpoints []engine.EndpointStatus
	// ResolvConf is the container's /etc/resolv.conf.
	ResolvConf []byte
	// Hosts are /etc/hosts lines for the container's own names.
	Hosts []byte
	// Ports are the published ports as set up: bindings that asked for any
	// host port (0) have the one they got.
	Ports []engine.PortBinding
}

// Attach connects a container to its networks: an address on each (static or
// allocated), a veth pair per network, the default route, published ports and
// DNS records. It is idempotent: attaching again with the same request
// returns the same attachment (repairing kernel objects that went missing),
// with a different one it replaces the old attachment.
func (m *Manager) Attach(ctx context.Context, req AttachRequest) (Attachment, error) {
	if err := validID(req.ContainerID); err != nil {
		return Attachment{}, err
	}
	if len(req.Endpoints) == 0 {
		return Attachment{}, fmt.Errorf("attach %s: no network: %w", shortID(req.ContainerID), engine.ErrInvalid)
	}
	if !isNetns(req.NsPath) {
		return Attachment{}, fmt.Errorf("attach %s: %s is not a network namespace: %w", shortID(req.ContainerID), req.NsPath, engine.ErrInvalid)
	}
	ports, err := normalizePorts(req.Ports)
	if err != nil {
		return Attachment{}, fmt.Errorf("attach %s: %w", shortID(req.ContainerID), err)
	}
	start := time.Now()
	var att Attachment
	err = m.locked(ctx, func(d *db) error {
		nets, err := m.resolveNetworks(ctx, d, req.Endpoints)
		if err != nil {
			return err
		}
		h, err := hostHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		if old := d.Containers[req.ContainerID]; old != nil {
			if sameAttachment(old, req, nets, ports) {
				if err := m.repair(ctx, d, h, old); err != nil {
					return err
				}
				att = m.attachment(d, old)
				return nil
			}
			// The sandbox stays: the new attachment goes into it.
			if err := m.detach(ctx, d, h, old, true); err != nil {
				return err
			}
		}
		rec, err := m.plan(ctx, d, req, nets, ports)
		if err != nil {
			return err
		}
		if err := m.attach(ctx, d, h, rec); err != nil {
			return err
		}
		att = m.attachment(d, rec)
		return nil
	})
	if err != nil {
		return Attachment{}, fmt.Errorf("attach %s: %w", shortID(req.ContainerID), err)
	}
	m.opts.log.Debug("attached", "container", req.ContainerID, "endpoints", len(att.Endpoints), "ports", len(att.Ports), "elapsed", time.Since(start))
	return att, nil
}

// resolveNetworks finds the networks of a request, creating the default
// network on first use.
func (m *Manager) resolveNetworks(ctx context.Context, d *db, eps []engine.EndpointConfig) ([]*netRecord, error) {
	nets := make([]*netRecord, len(eps))
	for i, ec := range eps {
		n, err := d.network(ec.Network)
		if errors.Is(err, engine.ErrNotFound) && ec.Network == DefaultNetwork {
			n, err = m.create(ctx, d, engine.NetworkConfig{Name: DefaultNetwork, Driver: "bridge"})
		}
		if err != nil {
			return nil, err
		}
		for _, o := range nets[:i] {
			if o.ID == n.ID {
				return nil, fmt.Errorf("network %s is given twice: %w", n.Name, engine.ErrInvalid)
			}
		}
		nets[i] = n
	}
	return nets, nil
}

// plan checks ports and picks addresses: the record of the attachment.
func (m *Manager) plan(ctx context.Context, d *db, req AttachRequest, nets []*netRecord, ports []engine.PortBinding) (*ctrRecord, error) {
	if err := checkPorts(ctx, d, req.ContainerID, ports); err != nil {
		return nil, err
	}
	if err := assignPorts(ctx, d, req.ContainerID, ports); err != nil {
		return nil, err
	}
	rec := &ctrRecord{ID: req.ContainerID, Name: req.ContainerName, Hostname: req.Hostname, NsPath: req.NsPath, Ports: ports}
	for i, ec := range req.Endpoints {
		n := nets[i]
		used := d.usedAddrs(n.ID)
		var ip netip.Addr
		if ec.IPv4 != "" {
			a, err := parseStaticIP(ec.IPv4)
			if err != nil || !hostAddr(n.subnet(), a) || a == n.gateway() {
				return nil, fmt.Errorf("address %q is not a free host address of network %s (%s): %w", ec.IPv4, n.Name, n.Config.Subnet, engine.ErrInvalid)
			}
			if by, taken := used[a]; taken && by != req.ContainerID {
				return nil, fmt.Errorf("address %s on network %s is taken by container %s: %w", a, n.Name, shortID(by), engine.ErrConflict)
			}
			ip = a
		} else {
			a, err := allocate(n, used)
			if err != nil {
				return nil, err
			}
			ip = a
		}
		for _, al := range ec.Aliases {
			if !validDNSName(al) {
				return nil, fmt.Errorf("network alias %q: %w", al, engine.ErrInvalid)
			}
		}
		rec.Endpoints = append(rec.Endpoints, &endpoint{
			Network:  n.ID,
			Ifname:   fmt.Sprintf("eth%d", i),
			HostVeth: vethName(req.ContainerID, n.ID),
			IP:       ip,
			MAC:      macFor(ip),
			Aliases:  dedupe(ec.Aliases),
		})
	}
	return rec, nil
}

// attach records rec, then makes its kernel objects, rules and DNS records;
// on failure it takes everything back.
func (m *Manager) attach(ctx context.Context, d *db, h *netlink.Handle, rec *ctrRecord) error {
	d.Containers[rec.ID] = rec
	if len(rec.Ports) > 0 {
		d.RulesGen++
	}
	if err := m.save(d); err != nil {
		delete(d.Containers, rec.ID)
		return err
	}
	err := m.plumb(h, d, rec)
	// Also when the kernel lost the rules (a reboot): the first container
	// to start puts them back.
	if err == nil && (len(rec.Ports) > 0 || !m.synced(d.RulesGen)) {
		err = m.syncRules(d)
	}
	if err == nil && m.usesDNS(d, rec) {
		err = m.syncDNS(ctx, d)
	}
	if err != nil {
		if derr := m.detach(context.WithoutCancel(ctx), d, h, rec, true); derr != nil {
			m.opts.log.Debug("undo attach", "container", rec.ID, "err", derr)
		}
		return err
	}
	return nil
}

// repair re-creates what is missing of a recorded attachment (after a
// reboot, or a link deleted by hand) and makes sure rules and DNS match.
func (m *Manager) repair(ctx context.Context, d *db, h *netlink.Handle, rec *ctrRecord) error {
	present := true
	for _, ep := range rec.Endpoints {
		ok, err := linkExists(h, ep.HostVeth)
		if err != nil {
			return err
		}
		present = present && ok
	}
	if !present {
		if err := m.unplumb(h, rec); err != nil {
			return err
		}
		if err := m.plumb(h, d, rec); err != nil {
			return err
		}
	}
	if !m.synced(d.RulesGen) {
		if err := m.syncRules(d); err != nil {
			return err
		}
	}
	if m.usesDNS(d, rec) && !m.dnsAlive() {
		return m.syncDNS(ctx, d)
	}
	return nil
}

// Detach removes a container's endpoints: veths, addresses, published ports
// and DNS records, for a container that stopped for good. The sandbox file
// stays until RemoveSandbox, but without a namespace: the next start calls
// Sandbox again. The veths disappear a moment later, when the kernel has
// destroyed the old namespace (see release). It is idempotent.
func (m *Manager) Detach(ctx context.Context, containerID string) error {
	if err := validID(containerID); err != nil {
		return err
	}
	d, err := m.load()
	if err != nil {
		return err
	}
	if d.Containers[containerID] == nil {
		return nil // nothing to do; no need to lock
	}
	start := time.Now()
	err = m.locked(ctx, func(d *db) error {
		rec := d.Containers[containerID]
		if rec == nil {
			return nil
		}
		h, err := hostHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		return m.detach(ctx, d, h, rec, false)
	})
	if err != nil {
		return fmt.Errorf("detach %s: %w", shortID(containerID), err)
	}
	m.opts.log.Debug("detached", "container", containerID, "elapsed", time.Since(start))
	return nil
}

// detach removes rec's kernel objects, then its record, then the rules and
// DNS records that named it. With keepSandbox the veths are deleted and the
// sandbox keeps its namespace (slower, for a sandbox about to be attached
// again); otherwise the namespace is let go of (see release).
func (m *Manager) detach(ctx context.Context, d *db, h *netlink.Handle, rec *ctrRecord, keepSandbox bool) error {
	release := m.release
	if keepSandbox {
		release = m.unplumb
	}
	if err := release(h, rec); err != nil {
		return err
	}
	dns := m.usesDNS(d, rec)
	delete(d.Containers, rec.ID)
	if len(rec.Ports) > 0 {
		d.RulesGen++
	}
	if err := m.save(d); err != nil {
		return err
	}
	if len(rec.Ports) > 0 {
		if err := m.syncRules(d); err != nil {
			return err
		}
	}
	if dns {
		return m.syncDNS(ctx, d)
	}
	return nil
}

// Endpoints returns a container's endpoints (none when it is not attached).
func (m *Manager) Endpoints(ctx context.Context, containerID string) ([]engine.EndpointStatus, error) {
	d, err := m.load()
	if err != nil {
		return nil, err
	}
	rec := d.Containers[containerID]
	if rec == nil {
		return nil, nil
	}
	return endpointStatuses(d, rec), nil
}

func endpointStatuses(d *db, rec *ctrRecord) []engine.EndpointStatus {
	out := make([]engine.EndpointStatus, 0, len(rec.Endpoints))
	for _, ep := range rec.Endpoints {
		out = append(out, ep.status(d.networkByID(ep.Network)))
	}
	return out
}

// plumb makes rec's veth pairs and configures their container side. All the
// work in the container's namespace goes through one netlink handle.
func (m *Manager) plumb(h *netlink.Handle, d *db, rec *ctrRecord) error {
	nsfd, err := unix.Open(rec.NsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", rec.NsPath, err)
	}
	defer unix.Close(nsfd)
	nh, err := handleIn(nsfd)
	if err != nil {
		return fmt.Errorf("sandbox %s: %w", rec.NsPath, err)
	}
	defer nh.Close()
	routed := false
	for _, ep := range rec.Endpoints {
		n := d.networkByID(ep.Network)
		if n == nil {
			return fmt.Errorf("network %s: %w", ep.Network, engine.ErrNotFound)
		}
		br, err := m.ensureBridge(h, n)
		if err != nil {
			return err
		}
		mac, err := net.ParseMAC(ep.MAC)
		if err != nil {
			return fmt.Errorf("endpoint %s: %w", ep.Ifname, err)
		}
		v := veth{name: ep.HostVeth, peer: ep.Ifname, peerMAC: mac, mtu: br.Attrs().MTU, master: br.Attrs().Index, nsfd: nsfd}
		err = v.add()
		if errors.Is(err, unix.EEXIST) {
			// The veth of an earlier attachment of this container, whose
			// namespace the kernel has not finished destroying.
			if err = deleteLink(h, ep.HostVeth); err == nil {
				err = v.add()
			}
		}
		if err != nil {
			return fmt.Errorf("veth %s: %w", ep.HostVeth, err)
		}
		// Hairpin lets a container reach its own published port: the DNATed
		// packet goes back out of the bridge port it came in by.
		host := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ep.HostVeth}}
		if err := h.LinkSetHairpin(host, true); err != nil {
			return fmt.Errorf("veth %s: hairpin: %w", ep.HostVeth, err)
		}
		peer, err := nh.LinkByName(ep.Ifname)
		if err != nil {
			return fmt.Errorf("%s in sandbox: %w", ep.Ifname, err)
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: ep.IP.AsSlice(), Mask: net.CIDRMask(n.subnet().Bits(), 32)}}
		if err := nh.AddrAdd(peer, a); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("%s in sandbox: address %s: %w", ep.Ifname, a.IPNet, err)
		}
		if err := nh.LinkSetUp(peer); err != nil {
			return fmt.Errorf("%s in sandbox: up: %w", ep.Ifname, err)
		}
		if !routed && !n.Config.Internal {
			r := &netlink.Route{LinkIndex: peer.Attrs().Index, Gw: n.gateway().AsSlice()}
			if err := nh.RouteReplace(r); err != nil {
				return fmt.Errorf("%s in sandbox: default route via %s: %w", ep.Ifname, n.gateway(), err)
			}
			routed = true
		}
	}
	return nil
}

// release takes rec's endpoints off the host without waiting for the
// kernel: each host veth is set down, so it carries nothing from then on,
// whatever still holds the container's namespace, and the sandbox file is
// unmounted (it stays, empty, until RemoveSandbox; Sandbox makes a fresh
// namespace on it for the next start). The namespace, with the container
// side of every veth, is destroyed by the kernel in the background once
// unused, and the host sides go with their peers. Deleting the veths here
// instead costs an RCU grace period each (15-40 ms on these machines),
// which would be most of what a bridge network adds to a container's start
// and stop.
func (m *Manager) release(h *netlink.Handle, rec *ctrRecord) error {
	if !isNetns(rec.NsPath) {
		// No sandbox to let go of: whatever still holds the old namespace
		// keeps the veths, so delete them.
		return m.unplumb(h, rec)
	}
	for _, ep := range rec.Endpoints {
		l, err := h.LinkByName(ep.HostVeth)
		if err != nil {
			continue // gone already
		}
		if err := h.LinkSetDown(l); err != nil && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("veth %s: down: %w", ep.HostVeth, err)
		}
	}
	if err := unix.Unmount(rec.NsPath, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %w", rec.NsPath, err)
	}
	return nil
}

// unplumb deletes rec's veth pairs (the container side goes with the host
// side) and waits for the kernel. Missing ones are fine.
func (m *Manager) unplumb(h *netlink.Handle, rec *ctrRecord) error {
	var errs []error
	for _, ep := range rec.Endpoints {
		errs = append(errs, deleteLink(h, ep.HostVeth))
	}
	return errors.Join(errs...)
}

// veth is a pair to create in one netlink request: host side up and
// enslaved to the bridge, container side in the sandbox with its MAC.
// (netlink.LinkAdd needs three requests for the same.)
type veth struct {
	name, peer string
	peerMAC    net.HardwareAddr
	mtu        int
	master     int
	nsfd       int
}

func (v veth) add() error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Flags, msg.Change = unix.IFF_UP, unix.IFF_UP
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(v.name)))
	req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(v.mtu))))
	req.AddData(nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(v.master))))
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
	peer := info.AddRtAttr(nl.IFLA_INFO_DATA, nil).AddRtAttr(nl.VETH_INFO_PEER, nil)
	// The peer cannot be set up here: veth_open fails until the pair is
	// complete.
	nl.NewIfInfomsgChild(peer, unix.AF_UNSPEC)
	peer.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(v.peer))
	peer.AddRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(v.mtu)))
	peer.AddRtAttr(unix.IFLA_ADDRESS, v.peerMAC)
	peer.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(v.nsfd)))
	req.AddData(info)
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// sameAttachment reports whether rec already is what req asks for.
func sameAttachment(rec *ctrRecord, req AttachRequest, nets []*netRecord, ports []engine.PortBinding) bool {
	if rec.NsPath != req.NsPath || len(rec.Endpoints) != len(nets) || len(rec.Ports) != len(ports) {
		return false
	}
	for i, ep := range rec.Endpoints {
		ec := req.Endpoints[i]
		if ep.Network != nets[i].ID || !slices.Equal(ep.Aliases, dedupe(ec.Aliases)) {
			return false
		}
		if ec.IPv4 != "" {
			if a, err := parseStaticIP(ec.IPv4); err != nil || a != ep.IP {
				return false
			}
		}
	}
	for i, p := range ports {
		q := rec.Ports[i]
		if p.HostPort == 0 {
			p.HostPort = q.HostPort
		}
		if p != q {
			return false
		}
	}
	return true
}

// attachment is what Attach returns for rec.
func (m *Manager) attachment(d *db, rec *ctrRecord) Attachment {
	att := Attachment{
		Endpoints:  endpointStatuses(d, rec),
		ResolvConf: m.containerResolvConf(d, rec),
		Ports:      slices.Clone(rec.Ports),
	}
	var names []string
	for _, s := range []string{rec.Hostname, rec.Name} {
		if s != "" && !slices.Contains(names, s) {
			names = append(names, s)
		}
	}
	if len(names) > 0 && len(rec.Endpoints) > 0 {
		att.Hosts = []byte(rec.Endpoints[0].IP.String() + "\t" + strings.Join(names, " ") + "\n")
	}
	return att
}

// parseStaticIP accepts an address, or an address with a prefix length.
func parseStaticIP(s string) (netip.Addr, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), nil
	}
	return netip.ParseAddr(s)
}

func dedupe(ss []string) []string {
	var out []string
	for _, s := range ss {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// validDNSName accepts names a resolver can ask for: labels of letters,
// digits, '-' and '_', separated by dots.
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}
