package network

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"berth.dev/berth/engine"
)

// DefaultNetwork is the network `berth run` joins when none is named, created
// on first use, as Docker's "bridge".
const DefaultNetwork = "bridge"

// defaultBridgeSubnet is what the default network gets when it is free: the
// subnet of Docker's docker0, which users expect.
var defaultBridgeSubnet = netip.MustParsePrefix("172.17.0.0/16")

// pool is where networks without a subnet get one: each prefix is split into
// /24s, taken in order.
var pool = []netip.Prefix{
	netip.MustParsePrefix("172.18.0.0/15"), // 172.18 - 172.19
	netip.MustParsePrefix("172.20.0.0/14"), // 172.20 - 172.23
	netip.MustParsePrefix("172.24.0.0/13"), // 172.24 - 172.31
	netip.MustParsePrefix("10.89.0.0/16"),
	netip.MustParsePrefix("10.90.0.0/15"),
	netip.MustParsePrefix("10.92.0.0/14"),
	netip.MustParsePrefix("10.96.0.0/14"),
}

const poolBits = 24

// pickSubnet returns the first /24 of the pool that overlaps nothing in
// taken, trying prefer first when it is valid.
func pickSubnet(taken []netip.Prefix, prefer netip.Prefix) (netip.Prefix, error) {
	free := func(p netip.Prefix) bool {
		for _, t := range taken {
			if t.Overlaps(p) {
				return false
			}
		}
		return true
	}
	if prefer.IsValid() && free(prefer) {
		return prefer, nil
	}
	for _, big := range pool {
		step := uint32(1) << (32 - poolBits)
		base := u32(big.Addr())
		n := uint32(1) << (poolBits - big.Bits())
		for i := range n {
			p := netip.PrefixFrom(addr(base+i*step), poolBits)
			if free(p) {
				return p, nil
			}
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free subnet left in the default pool: %w", engine.ErrConflict)
}

// parseSubnet checks a network's subnet and gateway and fills in the default
// gateway (the first host address).
func parseSubnet(subnet, gateway string) (netip.Prefix, netip.Addr, error) {
	p, err := netip.ParsePrefix(subnet)
	if err != nil {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("subnet %q: %w", subnet, engine.ErrInvalid)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("subnet %s: only IPv4 is supported: %w", subnet, engine.ErrInvalid)
	}
	if p.Masked() != p {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("subnet %s: host bits set (did you mean %s?): %w", subnet, p.Masked(), engine.ErrInvalid)
	}
	if p.Bits() > 30 || p.Bits() < 8 {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("subnet %s: prefix length must be between 8 and 30: %w", subnet, engine.ErrInvalid)
	}
	gw := p.Addr().Next()
	if gateway != "" {
		gw, err = netip.ParseAddr(gateway)
		if err != nil || !hostAddr(p, gw) {
			return netip.Prefix{}, netip.Addr{}, fmt.Errorf("gateway %q: not a host address of %s: %w", gateway, p, engine.ErrInvalid)
		}
	}
	return p, gw, nil
}

// hostAddr reports whether a is a usable host address of p (not the network
// or broadcast address).
func hostAddr(p netip.Prefix, a netip.Addr) bool {
	return a.Is4() && p.Contains(a) && a != p.Addr() && a != broadcast(p)
}

func broadcast(p netip.Prefix) netip.Addr {
	return addr(u32(p.Addr()) | (1<<(32-p.Bits()) - 1))
}

// allocate picks a free host address of n, starting at n.Next and wrapping,
// and advances n.Next past it.
func allocate(n *netRecord, used map[netip.Addr]string) (netip.Addr, error) {
	p := n.subnet()
	first, last := u32(p.Addr())+1, u32(broadcast(p))-1
	start := first
	if n.Next.IsValid() && p.Contains(n.Next) {
		start = max(u32(n.Next), first)
	}
	size := last - first + 1
	for i := range size {
		a := addr(first + (start-first+i)%size)
		if _, taken := used[a]; taken || a == n.gateway() {
			continue
		}
		n.Next = a.Next()
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("network %s: no free address left in %s: %w", n.Name, p, engine.ErrConflict)
}

// usedAddrs returns the addresses held on network id.
func (d *db) usedAddrs(id string) map[netip.Addr]string {
	used := map[netip.Addr]string{}
	for cid, ep := range d.endpointsOn(id) {
		used[ep.IP] = cid
	}
	return used
}

// macFor derives a MAC from the address, as Docker does (02:42 + IPv4): the
// same address always has the same MAC, so neighbours' ARP caches stay right
// when an address is reused.
func macFor(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func addr(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}
