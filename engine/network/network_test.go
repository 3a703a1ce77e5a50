package network

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"berth.dev/berth/engine"
)

func TestSandbox(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	id := newID()
	p1, err := e.m.Sandbox(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := e.m.Sandbox(ctx, id)
	if err != nil || p1 != p2 {
		t.Fatalf("second Sandbox = %q, %v; want %q", p2, err, p1)
	}
	if !isNetns(p1) {
		t.Fatalf("%s is not a network namespace", p1)
	}
	nsfd, err := unix.Open(p1, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nsfd)
	h, err := handleIn(nsfd)
	if err != nil {
		t.Fatal(err)
	}
	links, err := h.LinkList()
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0].Attrs().Name != "lo" || links[0].Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("sandbox links = %v, want only lo, up", links)
	}
	for range 2 {
		if err := e.m.RemoveSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(p1); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace file after RemoveSandbox: %v", err)
	}
	if _, err := e.m.Sandbox(ctx, "../x"); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("Sandbox(../x) err = %v, want ErrInvalid", err)
	}
}

func TestNetworkLifecycle(t *testing.T) {
	t.Parallel()
	var users map[string][]string
	e := newEnv(t, WithUsers(func(context.Context) (map[string][]string, error) { return users, nil }))
	ctx := t.Context()

	a := e.network(engine.NetworkConfig{Name: "a", DNS: true, Labels: map[string]string{"tier": "front"}})
	if a.Config.Subnet == "" || a.Config.Gateway == "" || a.Bridge == "" || a.Config.Driver != "bridge" {
		t.Fatalf("created network = %+v", a)
	}
	br, err := netlink.LinkByName(a.Bridge)
	if err != nil {
		t.Fatalf("bridge: %v", err)
	}
	addrs, _ := netlink.AddrList(br, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IPNet.String() != a.Config.Gateway+"/24" {
		t.Errorf("bridge addresses = %v, want %s/24", addrs, a.Config.Gateway)
	}
	if v, _ := os.ReadFile("/proc/sys/net/ipv4/conf/" + a.Bridge + "/route_localnet"); strings.TrimSpace(string(v)) != "1" {
		t.Errorf("route_localnet = %q", v)
	}
	if v, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(string(v)) != "1" {
		t.Errorf("ip_forward = %q", v)
	}
	if !tableExists(t, e.m.Table()) {
		t.Errorf("table %s missing", e.m.Table())
	}

	if _, err := e.m.Create(ctx, engine.NetworkConfig{Name: "a"}); !errors.Is(err, engine.ErrExists) {
		t.Errorf("duplicate name: err = %v, want ErrExists", err)
	}
	if _, err := e.m.Create(ctx, engine.NetworkConfig{Name: "b", Subnet: a.Config.Subnet}); !errors.Is(err, engine.ErrConflict) {
		t.Errorf("overlapping subnet: err = %v, want ErrConflict", err)
	}
	hostNet := subnet24(hostIPv4(t))
	if _, err := e.m.Create(ctx, engine.NetworkConfig{Name: "b", Subnet: hostNet}); !errors.Is(err, engine.ErrConflict) {
		t.Errorf("subnet of a host route (%s): err = %v, want ErrConflict", hostNet, err)
	}
	for _, bad := range []engine.NetworkConfig{{Name: "host"}, {Name: "-x"}, {Name: "b", Driver: "overlay"}, {Name: "b", Subnet: "10.1.1.1/24"}} {
		if _, err := e.m.Create(ctx, bad); err == nil {
			t.Errorf("Create(%+v) succeeded", bad)
		}
	}

	b := e.network(engine.NetworkConfig{Name: "b", Subnet: "10.250.77.0/24", Gateway: "10.250.77.254", Internal: true})
	if b.Config.Gateway != "10.250.77.254" {
		t.Errorf("gateway = %s", b.Config.Gateway)
	}
	for _, ref := range []string{"a", a.ID, a.ID[:12]} {
		if got, err := e.m.Inspect(ctx, ref); err != nil || got.ID != a.ID {
			t.Errorf("Inspect(%s) = %s, %v", ref, got.ID, err)
		}
	}
	if _, err := e.m.Inspect(ctx, "nope"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Inspect(nope) err = %v", err)
	}
	if l, _ := e.m.List(ctx, engine.ListOptions{Labels: map[string]string{"tier": ""}}); len(l) != 1 || l[0].Name != "a" {
		t.Errorf("List(tier) = %v", l)
	}
	if l, _ := e.m.List(ctx, engine.ListOptions{}); len(l) != 2 {
		t.Errorf("List = %d networks, want 2", len(l))
	}

	users = map[string][]string{"b": {"c0ffee"}}
	if err := e.m.Remove(ctx, "b"); !errors.Is(err, engine.ErrInUse) {
		t.Errorf("Remove of a used network: err = %v, want ErrInUse", err)
	}
	pruned, err := e.m.Prune(ctx)
	if err != nil || len(pruned) != 1 || pruned[0] != "a" {
		t.Errorf("Prune = %v, %v; want [a]", pruned, err)
	}
	if _, err := netlink.LinkByName(a.Bridge); err == nil {
		t.Errorf("bridge %s left after prune", a.Bridge)
	}
	users = nil
	if err := e.m.Remove(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if tableExists(t, e.m.Table()) {
		t.Errorf("table %s left after the last network", e.m.Table())
	}
}

// subnet24 returns the /24 an address is in, as a string.
func subnet24(addr string) string {
	ip := net.ParseIP(addr).To4()
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(24, 32)), Mask: net.CIDRMask(24, 32)}).String()
}

// TestBridgeNetworking is the behaviour of the issue, on sandboxes run like
// containers: names, isolation, published ports from everywhere, NAT,
// internal networks and DNS forwarding.
func TestBridgeNetworking(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	up := newUpstream(t, e.resolv)
	hostIP := hostIPv4(t)
	out := newOutside(t)

	front := e.network(engine.NetworkConfig{Name: "front", DNS: true})
	e.network(engine.NetworkConfig{Name: "back", DNS: true})
	e.network(engine.NetworkConfig{Name: "int", DNS: true, Internal: true})

	// Ports from the test's own range of free ports.
	webPort, udpPort := freePort(t, "tcp"), freePort(t, "udp")
	a := e.container("a", []engine.EndpointConfig{{Network: "front", Aliases: []string{"web"}}},
		engine.PortBinding{HostPort: webPort, ContainerPort: 80},
		engine.PortBinding{HostPort: udpPort, ContainerPort: 5353, Protocol: "udp"})
	b := e.container("b", []engine.EndpointConfig{{Network: "front"}})
	c := e.container("c", []engine.EndpointConfig{{Network: "back"}})
	i := e.container("i", []engine.EndpointConfig{{Network: "int"}})
	a.serve()
	i.serve()
	udpEcho(t, a.ns, ":5353")

	// Servers the containers go out to: on the host's own address, and in
	// the outside namespace (which sees the masqueraded source).
	hostL, err := net.Listen("tcp4", net.JoinHostPort(hostIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	httpServer(t, hostL, "host")
	hostURL := "http://" + hostL.Addr().String() + "/"
	var outL net.Listener
	inNetns(t, out.NS, func() (err error) { outL, err = net.Listen("tcp4", net.JoinHostPort(out.PeerIP, "8081")); return err })
	httpServer(t, outL, "outside")
	outURL := "http://" + outL.Addr().String() + "/"
	published := func(host string) string { return "http://" + net.JoinHostPort(host, strconv.Itoa(int(webPort))) + "/" }

	if got := string(a.att.ResolvConf); !strings.Contains(got, "nameserver "+front.Config.Gateway+"\n") {
		t.Errorf("resolv.conf of a = %q, want nameserver %s", got, front.Config.Gateway)
	}
	if got := string(a.att.Hosts); got != a.ip(0)+"\ta\n" {
		t.Errorf("hosts of a = %q", got)
	}
	if len(a.att.Endpoints) != 1 || a.att.Endpoints[0].Interface != "eth0" || a.att.Endpoints[0].Gateway != front.Config.Gateway {
		t.Errorf("endpoints of a = %+v", a.att.Endpoints)
	}

	t.Run("by name", func(t *testing.T) {
		t.Parallel()
		got, err := b.run("ping", "-c", "1", "-W", "2", "a")
		contains(t, "b: ping a", got, err, "1 packets received")
		got, err = b.get("http://a/")
		contains(t, "b: wget http://a/", got, err, "hello from a")
		got, err = b.get("http://web/")
		contains(t, "b: wget http://web/ (alias)", got, err, "hello from a")
		got, err = b.run("nslookup", "a")
		contains(t, "b: nslookup a", got, err, a.ip(0))
	})
	t.Run("isolation", func(t *testing.T) {
		t.Parallel()
		got, err := c.cannotGet("http://" + a.ip(0) + "/")
		fails(t, "c (network back): wget a by address", got, err)
		got, err = c.run("ping", "-c", "1", "-W", "1", a.ip(0))
		fails(t, "c: ping a by address", got, err)
		got, err = c.run("nslookup", "a")
		fails(t, "c: nslookup a (a name of another network)", got, err)
		got, err = a.cannotGet("http://" + i.ip(0) + "/")
		fails(t, "a: wget the internal network", got, err)
	})
	t.Run("published port", func(t *testing.T) {
		t.Parallel()
		for what, url := range map[string]string{"host loopback": published("127.0.0.1"), "host address": published(hostIP)} {
			got, err := httpGet(nil, url)
			contains(t, "host: GET "+what, got, err, "hello from a")
		}
		got, err := httpGet(dialIn(t, out.NS), published(out.HostIP))
		contains(t, "outside: GET the host's address", got, err, "hello from a")
		got, err = c.get(published(hostIP))
		contains(t, "c (other network): wget the published port", got, err, "hello from a")
		got, err = b.get(published(hostIP))
		contains(t, "b (same network, hairpin): wget the published port", got, err, "hello from a")
		got, err = a.get(published(hostIP))
		contains(t, "a (itself, hairpin): wget the published port", got, err, "hello from a")
		for _, host := range []string{"127.0.0.1", hostIP} {
			if reply := udpAsk(t, nil, net.JoinHostPort(host, strconv.Itoa(int(udpPort)))); reply != "echo: ping" {
				t.Errorf("udp via %s = %q", host, reply)
			}
		}
	})
	t.Run("outbound NAT", func(t *testing.T) {
		t.Parallel()
		got, err := b.get(hostURL)
		contains(t, "b: wget the host's address", got, err, "hello from host")
		got, err = b.get(outURL)
		contains(t, "b: wget outside", got, err, "hello from outside, you are "+out.HostIP)
	})
	t.Run("internal has no way out", func(t *testing.T) {
		t.Parallel()
		got, err := i.cannotGet(hostURL)
		fails(t, "i: wget the host's address", got, err)
		got, err = i.cannotGet(outURL)
		fails(t, "i: wget outside", got, err)
		got, err = i.run("nslookup", "i")
		contains(t, "i: nslookup i (DNS on the gateway still works)", got, err, i.ip(0))
		if r, err := httpGet(dialIn(t, out.NS), "http://"+i.ip(0)+"/"); err == nil {
			t.Errorf("outside reached the internal network: %q", r)
		}
	})
	t.Run("dns forwarding", func(t *testing.T) {
		t.Parallel()
		got, err := b.run("nslookup", "outside.test")
		contains(t, "b: nslookup outside.test", got, err, "203.0.113.7")
		got, err = b.run("nslookup", "nosuch.test")
		fails(t, "b: nslookup nosuch.test", got, err)
		if !strings.Contains(got, "NXDOMAIN") {
			t.Errorf("nslookup nosuch.test = %q, want NXDOMAIN", got)
		}
		seen := false
		for len(up.Queries) > 0 {
			if <-up.Queries == "outside.test." {
				seen = true
			}
		}
		if !seen {
			t.Errorf("the upstream never saw outside.test")
		}
	})
}

func TestPortConflicts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	e.network(engine.NetworkConfig{Name: "n"})
	eps := []engine.EndpointConfig{{Network: "n"}}

	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	held := uint16(l.Addr().(*net.TCPAddr).Port)
	err = e.m.CheckPorts(ctx, "x", []engine.PortBinding{{HostPort: held, ContainerPort: 80}})
	if !errors.Is(err, engine.ErrConflict) || !strings.Contains(err.Error(), "(pid "+strconv.Itoa(os.Getpid())+")") {
		t.Errorf("port held by this process: err = %v, want ErrConflict naming pid %d", err, os.Getpid())
	}
	if err := e.m.CheckPorts(ctx, "x", []engine.PortBinding{{HostPort: held, ContainerPort: 80, Protocol: "udp"}}); err != nil {
		t.Errorf("same port, udp: %v", err)
	}

	p := freePort(t, "tcp")
	a := e.container("a", eps, engine.PortBinding{HostPort: p, ContainerPort: 80})
	b := e.sandbox("b")
	err = b.attach(eps, engine.PortBinding{HostIP: "127.0.0.1", HostPort: p, ContainerPort: 80})
	if !errors.Is(err, engine.ErrConflict) || !strings.Contains(err.Error(), "container a") {
		t.Errorf("port of another container: err = %v, want ErrConflict naming a", err)
	}
	if eps, _ := e.m.Endpoints(ctx, b.id); len(eps) != 0 {
		t.Errorf("failed attach left endpoints: %v", eps)
	}
	if _, err := netlink.LinkByName(vethName(b.id, a.att.Endpoints[0].NetworkID)); err == nil {
		t.Errorf("failed attach left a veth")
	}
	// Any host port: one is picked.
	if err := b.attach(eps, engine.PortBinding{ContainerPort: 80}); err != nil {
		t.Fatal(err)
	}
	if got := b.att.Ports[0].HostPort; got < ephemeralLow || got > ephemeralHigh {
		t.Errorf("assigned host port = %d", got)
	}
	// Static addresses.
	c := e.sandbox("c")
	if err := c.attach([]engine.EndpointConfig{{Network: "n", IPv4: a.ip(0)}}); !errors.Is(err, engine.ErrConflict) {
		t.Errorf("static address of a: err = %v, want ErrConflict", err)
	}
	if err := c.attach([]engine.EndpointConfig{{Network: "n", IPv4: "192.0.2.99"}}); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("static address outside the subnet: err = %v, want ErrInvalid", err)
	}
}

func TestAttachIdempotentAndRepair(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	e.network(engine.NetworkConfig{Name: "n1"})
	e.network(engine.NetworkConfig{Name: "n2", Internal: true})
	eps := []engine.EndpointConfig{{Network: "n2"}, {Network: "n1", Aliases: []string{"x"}}}
	a := e.container("a", eps)
	first := a.att
	if len(first.Endpoints) != 2 || first.Endpoints[0].Interface != "eth0" || first.Endpoints[1].Interface != "eth1" {
		t.Fatalf("endpoints = %+v", first.Endpoints)
	}
	// The default route goes through the first non-internal network.
	inNetns(t, a.ns, func() error {
		routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Dst == nil && r.Gw.String() != first.Endpoints[1].Gateway {
				t.Errorf("default route via %s, want %s", r.Gw, first.Endpoints[1].Gateway)
			}
		}
		l, err := netlink.LinkByName("eth1")
		if err != nil {
			return err
		}
		if l.Attrs().MTU != hostMTUForTest(t) {
			t.Errorf("eth1 MTU = %d, want the host's %d", l.Attrs().MTU, hostMTUForTest(t))
		}
		return nil
	})
	if err := a.attach(eps); err != nil {
		t.Fatal(err)
	}
	if a.att.Endpoints[0].IPv4 != first.Endpoints[0].IPv4 || a.att.Endpoints[1].IPv4 != first.Endpoints[1].IPv4 {
		t.Errorf("second attach changed addresses: %+v then %+v", first.Endpoints, a.att.Endpoints)
	}
	// A veth deleted behind berth's back comes back with the same address.
	if err := netlink.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: vethName(a.id, first.Endpoints[1].NetworkID)}}); err != nil {
		t.Fatal(err)
	}
	if err := a.attach(eps); err != nil {
		t.Fatal(err)
	}
	if a.att.Endpoints[1].IPv4 != first.Endpoints[1].IPv4 {
		t.Errorf("repair changed the address: %s then %s", first.Endpoints[1].IPv4, a.att.Endpoints[1].IPv4)
	}
	if _, err := netlink.LinkByName(vethName(a.id, first.Endpoints[1].NetworkID)); err != nil {
		t.Errorf("veth not repaired: %v", err)
	}
	// Another request replaces the attachment in the same sandbox.
	if err := a.attach([]engine.EndpointConfig{{Network: "n1", Aliases: []string{"y"}}}); err != nil {
		t.Fatal(err)
	}
	if len(a.att.Endpoints) != 1 || a.att.Endpoints[0].Aliases[0] != "y" || !isNetns(a.ns) {
		t.Fatalf("replaced attachment = %+v (sandbox a namespace: %v)", a.att.Endpoints, isNetns(a.ns))
	}
	if got, err := a.run("ping", "-c", "1", "-W", "2", a.att.Endpoints[0].Gateway); err != nil {
		t.Errorf("after replace: ping the gateway: %v\n%s", err, got)
	}
	// Detach releases the addresses; Detach again is fine.
	for range 2 {
		if err := e.m.Detach(ctx, a.id); err != nil {
			t.Fatal(err)
		}
	}
	if eps, _ := e.m.Endpoints(ctx, a.id); len(eps) != 0 {
		t.Errorf("endpoints after detach: %v", eps)
	}
	if n, _ := e.m.Inspect(ctx, "n1"); len(n.Containers) != 0 {
		t.Errorf("network still lists containers: %v", n.Containers)
	}
}

func hostMTUForTest(t *testing.T) int {
	h, err := hostHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	return hostMTU(h)
}

func TestDefaultNetwork(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.container("a", []engine.EndpointConfig{{Network: DefaultNetwork}})
	n, err := e.m.Inspect(t.Context(), DefaultNetwork)
	if err != nil {
		t.Fatal(err)
	}
	e.names[n.Bridge] = true
	if n.Config.DNS || n.Config.Internal {
		t.Errorf("default network config = %+v, want no DNS, not internal", n.Config)
	}
	if _, ok := n.Containers[a.id]; !ok {
		t.Errorf("default network does not list its container")
	}
	// No DNS: the host's reachable resolvers (the test's resolv.conf has only
	// a loopback one, so the fallback).
	if got := string(a.att.ResolvConf); !strings.Contains(got, "nameserver 8.8.8.8") {
		t.Errorf("resolv.conf = %q", got)
	}
	if pruned, _ := e.m.Prune(t.Context()); len(pruned) != 0 {
		t.Errorf("Prune removed %v", pruned)
	}
}

// TestConcurrentAttach: managers of one root in parallel never hand out an
// address twice.
func TestConcurrentAttach(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.network(engine.NetworkConfig{Name: "n"})
	const n = 12
	ctrs := make([]*ctr, n)
	for i := range ctrs {
		ctrs[i] = e.sandbox("c" + strconv.Itoa(i))
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, c := range ctrs {
		wg.Go(func() {
			m, err := Open(e.m.root, WithRunDir(e.m.run), WithResolvConf(e.resolv))
			if err != nil {
				errs[i] = err
				return
			}
			errs[i] = (&ctr{e: e, id: c.id, name: c.name, ns: c.ns}).attachWith(m)
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	eps, _ := e.m.Inspect(t.Context(), "n")
	for i, err := range errs {
		if err != nil {
			t.Errorf("attach %d: %v", i, err)
		}
	}
	for _, ep := range eps.Containers {
		if seen[ep.IPv4] {
			t.Errorf("address %s handed out twice", ep.IPv4)
		}
		seen[ep.IPv4] = true
	}
	if len(seen) != n {
		t.Errorf("%d addresses for %d containers", len(seen), n)
	}
	for _, c := range ctrs {
		e.names[vethName(c.id, eps.ID)] = true
	}
}

func (c *ctr) attachWith(m *Manager) error {
	_, err := m.Attach(c.e.t.Context(), AttachRequest{ContainerID: c.id, ContainerName: c.name, NsPath: c.ns, Endpoints: []engine.EndpointConfig{{Network: "n"}}})
	return err
}

// TestGC plays crashes: a container that vanished without Detach, a record
// written before its veth, a DNS helper killed, a table lost.
func TestGC(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	n := e.network(engine.NetworkConfig{Name: "n", DNS: true})
	a := e.container("a", []engine.EndpointConfig{{Network: "n"}}, engine.PortBinding{HostPort: freePort(t, "tcp"), ContainerPort: 80})
	b := e.container("b", []engine.EndpointConfig{{Network: "n"}})
	// A kill -9 between writing the record and creating the veth.
	c := e.sandbox("c")
	err := e.m.locked(ctx, func(d *db) error {
		nets, _ := e.m.resolveNetworks(ctx, d, []engine.EndpointConfig{{Network: "n"}})
		rec, err := e.m.plan(ctx, d, AttachRequest{ContainerID: c.id, NsPath: c.ns, Endpoints: []engine.EndpointConfig{{Network: "n"}}}, nets, nil)
		if err != nil {
			return err
		}
		d.Containers[c.id] = rec
		return e.m.save(d)
	})
	if err != nil {
		t.Fatal(err)
	}

	// The helper killed: GC restarts it.
	p, ok := e.m.helperProcess()
	if !ok || !p.Alive() {
		t.Fatal("dns helper not running")
	}
	if err := unix.Kill(p.Pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitExit(p, 5e9)
	live := map[string]bool{a.id: true, b.id: true, c.id: true}
	if err := e.m.GC(ctx, func(id string) bool { return live[id] }); err != nil {
		t.Fatal(err)
	}
	if !e.m.dnsAlive() {
		t.Error("GC did not restart the dns helper")
	}
	got, err := b.run("nslookup", "a")
	contains(t, "b: nslookup a after the helper restarted", got, err, a.ip(0))

	// a and c are gone for good.
	delete(live, a.id)
	delete(live, c.id)
	if err := e.m.GC(ctx, func(id string) bool { return live[id] }); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{a.id, c.id} {
		if !linkGone(vethName(id, n.ID)) {
			t.Errorf("veth of %s left", id[:12])
		}
		if _, err := os.Stat(filepath.Join(e.m.netnsDir(), id)); err == nil {
			t.Errorf("namespace of %s left", id[:12])
		}
	}
	d, _ := e.m.load()
	if len(d.Containers) != 1 || d.Containers[b.id] == nil {
		t.Errorf("records after GC: %v", d.Containers)
	}
	for _, c := range d.Containers {
		if len(c.Ports) > 0 {
			t.Errorf("ports left: %v", c.Ports)
		}
	}

	// A reboot (or someone) took the table and the bridge: GC puts them back.
	if err := deleteTable(e.m.Table()); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(e.m.syncedPath())
	if err := e.m.GC(ctx, func(id string) bool { return live[id] }); err != nil {
		t.Fatal(err)
	}
	if !tableExists(t, e.m.Table()) {
		t.Error("GC did not restore the table")
	}

	// The last DNS user gone: the helper exits.
	delete(live, b.id)
	if err := e.m.GC(ctx, func(id string) bool { return live[id] }); err != nil {
		t.Fatal(err)
	}
	if pids := helperPids(e.m.dnsDir()); len(pids) > 0 || e.m.dnsAlive() {
		t.Errorf("dns helper still runs with nothing to serve: %v", pids)
	}
}

// linkGone waits a while for a link to disappear (veths go when the kernel
// has destroyed their namespace).
func linkGone(name string) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, err := netlink.LinkByName(name); err != nil {
			return true
		}
	}
	return false
}

func freePort(t *testing.T, proto string) uint16 {
	t.Helper()
	if proto == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return uint16(c.LocalAddr().(*net.UDPAddr).Port)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// udpEcho answers "echo: X" to every datagram X on addr in the namespace.
func udpEcho(t *testing.T, ns, addr string) {
	var pc net.PacketConn
	inNetns(t, ns, func() (err error) { pc, err = net.ListenPacket("udp4", addr); return err })
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(append([]byte("echo: "), buf[:n]...), from)
		}
	}()
}

func udpAsk(t *testing.T, dial func(ctx context.Context, network, addr string) (net.Conn, error), addr string) string {
	t.Helper()
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3e9)
	defer cancel()
	conn, err := dial(ctx, "udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadlineOf(ctx))
	if _, err := conn.Write([]byte("ping")); err != nil {
		return err.Error()
	}
	buf := make([]byte, 100)
	n, err := conn.Read(buf)
	if err != nil {
		return err.Error()
	}
	return string(buf[:n])
}

func deadlineOf(ctx context.Context) (d time.Time) {
	d, _ = ctx.Deadline()
	return d
}

// TestAfterReboot: the kernel lost the bridges, the rules and forwarding
// state (a reboot); the next container to start gets all of it back.
func TestAfterReboot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A subnet of its own: while the bridge is gone, its subnet is free to
	// the tests that run alongside (here and in other packages), whose
	// networks take the first /24 not routed on the host.
	n := e.network(engine.NetworkConfig{Name: "n", Subnet: "10.250.78.0/24"})
	if err := deleteLink(mustHostHandle(t), n.Bridge); err != nil {
		t.Fatal(err)
	}
	if err := deleteTable(e.m.Table()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.m.syncedPath(), []byte("another-boot 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := e.container("a", []engine.EndpointConfig{{Network: "n"}})
	if _, err := netlink.LinkByName(n.Bridge); err != nil {
		t.Errorf("bridge not recreated: %v", err)
	}
	if !tableExists(t, e.m.Table()) {
		t.Error("table not recreated")
	}
	got, err := a.run("ping", "-c", "1", "-W", "2", n.Config.Gateway)
	contains(t, "a: ping the gateway", got, err, "1 packets received")
}

// TestAfterRebootSubnetTaken: while the bridge was gone, something else on
// the host (here a veth, as a network of another data root would be)
// took its subnet; the next attach refuses to make a second bridge on it
// and says why.
func TestAfterRebootSubnetTaken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := e.network(engine.NetworkConfig{Name: "n", Subnet: "10.250.79.0/24"})
	h := mustHostHandle(t)
	if err := deleteLink(h, n.Bridge); err != nil {
		t.Fatal(err)
	}
	la := netlink.NewLinkAttrs()
	id := newID()
	la.Name = "bt" + id[:12]
	other := &netlink.Veth{LinkAttrs: la, PeerName: "bu" + id[:12]}
	if err := h.LinkAdd(other); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deleteLink(h, la.Name) })
	addr, _ := netlink.ParseAddr("10.250.79.9/24")
	if err := h.AddrAdd(other, addr); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(other); err != nil {
		t.Fatal(err)
	}
	err := e.sandbox("a").attach([]engine.EndpointConfig{{Network: "n"}})
	if !errors.Is(err, engine.ErrConflict) || !strings.Contains(err.Error(), "10.250.79.0/24") {
		t.Fatalf("attach with the subnet taken: %v, want ErrConflict naming the subnet", err)
	}
	if _, err := netlink.LinkByName(n.Bridge); err == nil {
		t.Errorf("bridge %s made on a taken subnet", n.Bridge)
	}
}

func mustHostHandle(t *testing.T) *netlink.Handle {
	h, err := hostHandle()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// TestSweepOrphans: a data root deleted with its networks still there
// leaves a bridge and a table; the next network made on the host removes
// them.
func TestSweepOrphans(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	goneRoot := filepath.Join(t.TempDir(), "gone")
	gone, err := Open(filepath.Join(goneRoot, "networks"), WithRunDir(filepath.Join(goneRoot, "run")))
	if err != nil {
		t.Fatal(err)
	}
	n, err := gone.Create(t.Context(), engine.NetworkConfig{Name: "left"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = deleteLink(mustHostHandle(t), n.Bridge)
		_ = deleteTable(gone.Table())
	})
	if table, root, ok := parseBridgeAlias(mustLink(t, n.Bridge).Attrs().Alias); !ok || table != gone.Table() || root != gone.root {
		t.Fatalf("alias of %s = %q, %q, %v", n.Bridge, table, root, ok)
	}
	if err := os.RemoveAll(goneRoot); err != nil {
		t.Fatal(err)
	}
	e.network(engine.NetworkConfig{Name: "n"})
	if _, err := netlink.LinkByName(n.Bridge); err == nil {
		t.Errorf("bridge %s of a deleted data root left", n.Bridge)
	}
	if tableExists(t, gone.Table()) {
		t.Errorf("table %s of a deleted data root left", gone.Table())
	}
}

func mustLink(t *testing.T, name string) netlink.Link {
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
