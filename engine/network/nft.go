package network

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/state"
)

// bridgePrefix is what every berth bridge's name starts with, in any data
// root: isolation drops forwarding from a network to any of them.
const bridgePrefix = "berth"

// ipsDstNAT is IPS_DST_NAT of the conntrack status bits.
const ipsDstNAT = 1 << 5

// syncRules replaces the table's content with what d implies, in one
// transaction, and records that the kernel is in sync with d.RulesGen. With
// no network left the table is deleted.
func (m *Manager) syncRules(d *db) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Name: m.opts.table, Family: nftables.TableFamilyIPv4}
	// add+delete makes the delete valid when the table does not exist yet;
	// the kernel applies the whole batch or nothing.
	c.AddTable(t)
	c.DelTable(t)
	if len(d.Networks) > 0 {
		c.AddTable(t)
		for _, ch := range buildRules(t, d) {
			c.AddChain(ch.chain)
			for _, r := range ch.rules {
				c.AddRule(&nftables.Rule{Table: t, Chain: ch.chain, Exprs: r})
			}
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables table %s: %w", m.opts.table, err)
	}
	// Forwarding is off after a reboot on hosts like these; NAT, published
	// ports and hairpin all need it. It is never turned off again: other
	// users of the host may rely on it by then.
	for _, n := range d.Networks {
		if !n.Config.Internal {
			if err := writeSysctl("net/ipv4/ip_forward", "1"); err != nil {
				return err
			}
			break
		}
	}
	return m.markSynced(d.RulesGen)
}

// markSynced records that the kernel has the bridges and rules of generation
// gen in this boot. The marker needs no fsync: losing it only costs a resync.
func (m *Manager) markSynced(gen uint64) error {
	boot, err := state.BootID()
	if err != nil {
		return err
	}
	return writeFileNoSync(m.syncedPath(), []byte(boot+" "+strconv.FormatUint(gen, 10)+"\n"))
}

// synced reports whether the kernel has generation gen of this boot.
func (m *Manager) synced(gen uint64) bool {
	data, err := os.ReadFile(m.syncedPath())
	if err != nil {
		return false
	}
	boot, err := state.BootID()
	if err != nil {
		return false
	}
	return string(bytes.TrimSpace(data)) == boot+" "+strconv.FormatUint(gen, 10)
}

type chainRules struct {
	chain *nftables.Chain
	rules [][]expr.Any
}

// buildRules is the table's content for d (see the package doc).
func buildRules(t *nftables.Table, d *db) []chainRules {
	accept := nftables.ChainPolicyAccept
	base := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return &nftables.Chain{Name: name, Table: t, Type: typ, Hooknum: hook, Priority: prio, Policy: &accept}
	}
	var (
		raw      = chainRules{chain: base("raw", nftables.ChainTypeFilter, nftables.ChainHookPrerouting, nftables.ChainPriorityRaw)}
		ports    = chainRules{chain: &nftables.Chain{Name: "ports", Table: t}}
		pre      = chainRules{chain: base("prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)}
		output   = chainRules{chain: base("output", nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest)}
		post     = chainRules{chain: base("postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)}
		forward  = chainRules{chain: base("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter)}
		input    = chainRules{chain: base("input", nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityFilter)}
		loopback = netip.MustParsePrefix("127.0.0.0/8")
	)

	// route_localnet is on for bridges; never let a container reach the
	// host's loopback services with it.
	raw.rules = append(raw.rules, cat(ifname(expr.MetaKeyIIFNAME, bridgePrefix, true, expr.CmpOpEq), ipNet(16, loopback, expr.CmpOpEq), verdict(expr.VerdictDrop)))

	jumpPorts := cat(fibDaddrLocal(), []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: "ports"}})
	pre.rules = append(pre.rules, jumpPorts)
	output.rules = append(output.rules, jumpPorts)

	forward.rules = append(forward.rules, cat(ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept)))
	nets := d.sortedNetworks()
	for _, n := range nets {
		if !n.Config.Internal {
			continue
		}
		br := n.Bridge
		forward.rules = append(forward.rules,
			cat(ifname(expr.MetaKeyIIFNAME, br, false, expr.CmpOpEq), ifname(expr.MetaKeyOIFNAME, br, false, expr.CmpOpNeq), verdict(expr.VerdictDrop)),
			cat(ifname(expr.MetaKeyOIFNAME, br, false, expr.CmpOpEq), ifname(expr.MetaKeyIIFNAME, br, false, expr.CmpOpNeq), verdict(expr.VerdictDrop)))
		input.rules = append(input.rules,
			cat(ifname(expr.MetaKeyIIFNAME, br, false, expr.CmpOpEq), ipAddr(16, n.gateway(), expr.CmpOpNeq), verdict(expr.VerdictDrop)))
	}
	forward.rules = append(forward.rules, cat(ctBits(expr.CtKeySTATUS, ipsDstNAT), verdict(expr.VerdictAccept)))
	for _, n := range nets {
		br, subnet := n.Bridge, n.subnet()
		forward.rules = append(forward.rules,
			cat(ifname(expr.MetaKeyIIFNAME, br, false, expr.CmpOpEq), ifname(expr.MetaKeyOIFNAME, bridgePrefix, true, expr.CmpOpEq),
				ifname(expr.MetaKeyOIFNAME, br, false, expr.CmpOpNeq), verdict(expr.VerdictDrop)))
		// Published ports reached from the host itself (its loopback or
		// its own addresses): the container answers the gateway.
		post.rules = append(post.rules,
			cat(ifname(expr.MetaKeyOIFNAME, br, false, expr.CmpOpEq), ctBits(expr.CtKeySTATUS, ipsDstNAT), fibSaddrLocal(), masq()),
			// Hairpin: a container reaching a published port of its own
			// network must get the answer back through the host.
			cat(ifname(expr.MetaKeyOIFNAME, br, false, expr.CmpOpEq), ctBits(expr.CtKeySTATUS, ipsDstNAT), ipNet(12, subnet, expr.CmpOpEq), masq()))
		if !n.Config.Internal {
			post.rules = append(post.rules,
				cat(ipNet(12, subnet, expr.CmpOpEq), ifname(expr.MetaKeyOIFNAME, br, false, expr.CmpOpNeq), masq()))
		}
	}

	for _, cid := range slices.Sorted(maps.Keys(d.Containers)) {
		c := d.Containers[cid]
		target, ok := portTarget(d, c)
		if !ok {
			continue
		}
		for _, p := range c.Ports {
			ports.rules = append(ports.rules, dnatRule(p, target))
		}
	}
	return []chainRules{raw, ports, pre, output, post, forward, input}
}

// portTarget is the address published ports of c go to: its first
// endpoint on a non-internal network, else its first endpoint.
func portTarget(d *db, c *ctrRecord) (netip.Addr, bool) {
	for _, ep := range c.Endpoints {
		if n := d.networkByID(ep.Network); n != nil && !n.Config.Internal {
			return ep.IP, true
		}
	}
	if len(c.Endpoints) > 0 {
		return c.Endpoints[0].IP, true
	}
	return netip.Addr{}, false
}

func dnatRule(p engine.PortBinding, to netip.Addr) []expr.Any {
	var r []expr.Any
	if ip, err := netip.ParseAddr(p.HostIP); err == nil && !ip.IsUnspecified() {
		r = append(r, ipAddr(16, ip, expr.CmpOpEq)...)
	}
	proto := byte(unix.IPPROTO_TCP)
	if p.Protocol == "udp" {
		proto = unix.IPPROTO_UDP
	}
	r = append(r,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(p.HostPort)},
		&expr.Immediate{Register: 1, Data: to.AsSlice()},
		&expr.Immediate{Register: 2, Data: be16(p.ContainerPort)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	)
	return r
}

// ifname matches an interface name exactly, or by prefix.
func ifname(key expr.MetaKey, name string, prefix bool, op expr.CmpOp) []expr.Any {
	data := []byte(name)
	if !prefix {
		data = make([]byte, unix.IFNAMSIZ)
		copy(data, name)
	}
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: op, Register: 1, Data: data}}
}

// ipNet matches the IPv4 source (offset 12) or destination (16) against p.
func ipNet(offset uint32, p netip.Prefix, op expr.CmpOp) []expr.Any {
	mask := binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-p.Bits()))
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: op, Register: 1, Data: p.Masked().Addr().AsSlice()},
	}
}

func ipAddr(offset uint32, a netip.Addr, op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Cmp{Op: op, Register: 1, Data: a.AsSlice()},
	}
}

// ctBits matches when any of bits is set in the conntrack key (state or status).
func ctBits(key expr.CtKey, bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: key},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binary.NativeEndian.AppendUint32(nil, bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func fibDaddrLocal() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)},
	}
}

func fibSaddrLocal() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagSADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)},
	}
}

func masq() []expr.Any { return []expr.Any{&expr.Masq{}} }

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

func cat(parts ...[]expr.Any) []expr.Any { return slices.Concat(parts...) }

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// deleteTable removes a table by name if it exists (tests and GC of a data
// root that is gone).
func deleteTable(name string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables table %s: %w", name, err)
	}
	return nil
}

// writeFileNoSync replaces path atomically without fsync, for files that are
// rebuilt from the state when lost (markers, the DNS helper's records).
func writeFileNoSync(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-"+strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
