package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/enginetest"
	"berth.dev/berth/engine/reexec"
)

func TestMain(m *testing.M) {
	if reexec.Init() {
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// nsTestRole runs a command in a sandbox, the way a container's init would
// join it: berth-nstest NSPATH RESOLVCONF|- ARGV...
const nsTestRole = "berth-nstest"

func init() { reexec.Register(nsTestRole, nsTestMain) }

func nsTestMain() {
	runtime.LockOSThread()
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "nstest:", err)
		os.Exit(126)
	}
	fd, err := unix.Open(os.Args[1], unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fail(err)
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		fail(err)
	}
	// The command starts in its own mount namespace (Unshareflags), so the
	// bind mount of its resolv.conf is its own.
	if rc := os.Args[2]; rc != "-" {
		if err := unix.Mount(rc, "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
			fail(err)
		}
	}
	fail(syscall.Exec(os.Args[3], os.Args[3:], []string{"PATH=/bin"}))
}

// env is one test's data root and manager.
type env struct {
	t      testing.TB
	root   string
	m      *Manager
	resolv string
	names  map[string]bool // kernel objects the test made, checked at the end
}

func newEnv(t testing.TB, opts ...Option) *env {
	t.Helper()
	enginetest.RequireRoot(t)
	enginetest.RequireFeature(t, "nftables")
	root := t.TempDir()
	e := &env{t: t, root: root, resolv: filepath.Join(root, "resolv.conf"), names: map[string]bool{}}
	if err := os.WriteFile(e.resolv, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts = append([]Option{WithRunDir(filepath.Join(root, "run")), WithResolvConf(e.resolv)}, opts...)
	m, err := Open(filepath.Join(root, "networks"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	t.Cleanup(e.teardown)
	return e
}

// teardown removes everything the test made and checks that nothing is left.
func (e *env) teardown() {
	t := e.t
	ctx := context.WithoutCancel(t.Context())
	d, err := e.m.load()
	if err != nil {
		t.Error(err)
		return
	}
	for _, c := range d.Containers {
		for _, ep := range c.Endpoints {
			e.names[ep.HostVeth] = true
		}
	}
	for _, n := range d.Networks {
		e.names[n.Bridge] = true
	}
	if err := e.m.GC(ctx, func(string) bool { return false }); err != nil {
		t.Errorf("teardown: gc: %v", err)
	}
	d, _ = e.m.load()
	for _, n := range d.Networks {
		if err := e.m.Remove(ctx, n.ID); err != nil {
			t.Errorf("teardown: %v", err)
		}
	}
	e.assertClean()
}

// assertClean fails the test when anything of its data root is left on the
// host: links, the table, namespace files, the DNS helper.
func (e *env) assertClean() {
	t := e.t
	t.Helper()
	// Veths go when the kernel has destroyed their namespace, a moment after
	// the sandbox is released.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		links, err := netlink.LinkList()
		if errors.Is(err, netlink.ErrDumpInterrupted) {
			continue // links changed during the dump (other tests): again
		}
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, l := range links {
			if e.names[l.Attrs().Name] {
				left = append(left, l.Attrs().Name)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("links left: %v", left)
			break
		}
	}
	if tableExists(t, e.m.Table()) {
		t.Errorf("nftables table %s is left", e.m.Table())
	}
	if ents, _ := os.ReadDir(e.m.netnsDir()); len(ents) > 0 {
		t.Errorf("namespace files left: %v", ents)
	}
	if p, ok := e.m.helperProcess(); ok && p.Alive() {
		t.Errorf("dns helper %d still runs", p.Pid)
	}
	if pids := helperPids(e.m.dnsDir()); len(pids) > 0 {
		t.Errorf("dns helper processes left: %v", pids)
	}
	d, _ := e.m.load()
	if len(d.Networks) > 0 || len(d.Containers) > 0 {
		t.Errorf("records left: %d networks, %d containers", len(d.Networks), len(d.Containers))
	}
}

func tableExists(t testing.TB, name string) bool {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name == name {
			return true
		}
	}
	return false
}

// helperPids finds berth-dns processes serving dir.
func helperPids(dir string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(data), "\x00")
		if len(args) >= 2 && args[0] == dnsRole && args[1] == dir {
			out = append(out, filepath.Base(filepath.Dir(p)))
		}
	}
	return out
}

func (e *env) network(cfg engine.NetworkConfig) engine.Network {
	e.t.Helper()
	n, err := e.m.Create(e.t.Context(), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.names[n.Bridge] = true
	return n
}

// ctr is a sandbox attached like a container's.
type ctr struct {
	e      *env
	id     string
	name   string
	ns     string
	att    Attachment
	resolv string
}

func (e *env) sandbox(name string) *ctr {
	e.t.Helper()
	id := newID()
	ns, err := e.m.Sandbox(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return &ctr{e: e, id: id, name: name, ns: ns}
}

func (e *env) container(name string, eps []engine.EndpointConfig, ports ...engine.PortBinding) *ctr {
	e.t.Helper()
	c := e.sandbox(name)
	if err := c.attach(eps, ports...); err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (c *ctr) attach(eps []engine.EndpointConfig, ports ...engine.PortBinding) error {
	att, err := c.e.m.Attach(c.e.t.Context(), AttachRequest{
		ContainerID: c.id, ContainerName: c.name, Hostname: c.name, NsPath: c.ns, Endpoints: eps, Ports: ports,
	})
	if err != nil {
		return err
	}
	c.att = att
	for _, ep := range att.Endpoints {
		c.e.names[vethName(c.id, ep.NetworkID)] = true
	}
	c.resolv = filepath.Join(c.e.root, c.id[:12]+".resolv.conf")
	return os.WriteFile(c.resolv, att.ResolvConf, 0o644)
}

func (c *ctr) ip(i int) string {
	p := netip.MustParsePrefix(c.att.Endpoints[i].IPv4)
	return p.Addr().String()
}

func (c *ctr) command(ctx context.Context, args ...string) *exec.Cmd {
	resolv := c.resolv
	if resolv == "" {
		resolv = "-"
	}
	cmd := exec.CommandContext(ctx, reexec.Self(), append([]string{c.ns, resolv, "/bin/busybox"}, args...)...)
	cmd.Args[0] = nsTestRole
	cmd.Env = []string{reexec.EnvGuard + "=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: unix.CLONE_NEWNS}
	return cmd
}

// run runs busybox with args in the sandbox and returns its output.
func (c *ctr) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(c.e.t.Context(), 20*time.Second)
	defer cancel()
	out, err := c.command(ctx, args...).CombinedOutput()
	return string(out), err
}

// get fetches url from inside the sandbox. busybox's wget -T crashes, so
// the timeout comes from busybox timeout.
func (c *ctr) get(url string) (string, error) {
	return c.run("timeout", "3", "/bin/busybox", "wget", "-q", "-O", "-", url)
}

// cannotGet is get for what must fail: a shorter wait.
func (c *ctr) cannotGet(url string) (string, error) {
	return c.run("timeout", "1", "/bin/busybox", "wget", "-q", "-O", "-", url)
}

// serve runs busybox httpd on port 80 in the sandbox, serving "hello from
// NAME", and waits until it answers.
func (c *ctr) serve() {
	t := c.e.t
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("hello from "+c.name+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := c.command(context.WithoutCancel(t.Context()), "httpd", "-f", "-p", "80", "-h", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	waitTCP(t, net.JoinHostPort(c.ip(0), "80"))
}

func waitTCP(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not answer: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inNetns runs fn on a thread in the namespace at ns; sockets fn makes stay
// there.
func inNetns(t testing.TB, ns string, fn func() error) {
	t.Helper()
	fd, err := unix.Open(ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	err = onThread(func() error {
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return err
		}
		return fn()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// httpServer serves "hello from NAME, you are REMOTEADDR" on l until the test ends.
func httpServer(t *testing.T, l net.Listener, name string) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintf(w, "hello from %s, you are %s\n", name, host)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
}

// httpGet fetches url from the host (or from a namespace when dial says so).
func httpGet(dial func(ctx context.Context, network, addr string) (net.Conn, error), url string) (string, error) {
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// hostIPv4 is the address of the host's default-route interface (eth0).
func hostIPv4(t *testing.T) string {
	t.Helper()
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst != nil && r.Dst.IP.To4() != nil && !r.Dst.IP.Equal(net.IPv4zero) {
			continue
		}
		l, err := netlink.LinkByIndex(r.LinkIndex)
		if err != nil {
			continue
		}
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
		if len(addrs) > 0 {
			return addrs[0].IP.String()
		}
	}
	t.Skip("no default route: no host interface address to test with")
	return ""
}

// outside is a namespace that plays the world outside the host: a veth
// pair with a /30 of 198.18.0.0/15 (the benchmarking range), no default
// route.
type outside struct {
	NS             string
	Veth           string
	HostIP, PeerIP string
}

func newOutside(t *testing.T) *outside {
	t.Helper()
	ns := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(ns, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := newNetns(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = removeNetns(ns) })
	o := &outside{NS: ns, Veth: "btout" + randHex(5)}
	for {
		n, _ := rand.Int(rand.Reader, big.NewInt(1<<15))
		base := netip.AddrFrom4([4]byte{198, 18 + byte(n.Int64()>>14), byte(n.Int64() >> 6), byte(n.Int64()&63) * 4})
		o.HostIP, o.PeerIP = base.Next().String(), base.Next().Next().String()
		if !hostHas(t, base) {
			break
		}
	}
	nsfd, err := unix.Open(ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nsfd)
	la := netlink.NewLinkAttrs()
	la.Name = o.Veth
	la.Flags = net.FlagUp
	v := netlink.NewVeth(la)
	v.PeerName = "eth0"
	v.PeerNamespace = netlink.NsFd(nsfd)
	if err := netlink.LinkAdd(v); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netlink.LinkDel(v) })
	if err := netlink.AddrAdd(v, mustAddr(o.HostIP+"/30")); err != nil {
		t.Fatal(err)
	}
	inNetns(t, ns, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, mustAddr(o.PeerIP+"/30")); err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	})
	return o
}

func hostHas(t *testing.T, a netip.Addr) bool {
	h, err := hostHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ps, err := hostPrefixes(h)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Overlaps(netip.PrefixFrom(a, 30)) {
			return true
		}
	}
	return false
}

func mustAddr(s string) *netlink.Addr {
	a, err := netlink.ParseAddr(s)
	if err != nil {
		panic(err)
	}
	return a
}

// dial returns a dialer whose sockets live in the namespace at ns.
func dialIn(t *testing.T, ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		var derr error
		inNetns(t, ns, func() error {
			conn, derr = (&net.Dialer{}).DialContext(ctx, network, addr)
			return nil
		})
		return conn, derr
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// upstream is a DNS server the test runs as the host's resolver: on port 53
// of a random 127/8 address, as resolv.conf has no port syntax. It knows
// "outside.test." and answers NXDOMAIN for anything else.
type upstream struct {
	Addr    string
	Queries chan string
}

func newUpstream(t *testing.T, resolvConf string) *upstream {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ip := netip.AddrFrom4([4]byte{127, 100 + b[0]%100, b[1], b[2]%250 + 2}).String()
	u := &upstream{Addr: ip, Queries: make(chan string, 100)}
	pc, err := net.ListenPacket("udp4", net.JoinHostPort(ip, "53"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		q := r.Question[0]
		select {
		case u.Queries <- q.Name:
		default:
		}
		if q.Name == "outside.test." && q.Qtype == dns.TypeA {
			m.SetReply(r)
			rr, _ := dns.NewRR("outside.test. 60 IN A 203.0.113.7")
			m.Answer = append(m.Answer, rr)
		} else if q.Name == "outside.test." {
			m.SetReply(r)
		} else {
			m.SetRcode(r, dns.RcodeNameError)
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { pc.Close() })
	if err := os.WriteFile(resolvConf, []byte("nameserver "+ip+"\noptions timeout:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return u
}

func contains(t *testing.T, what, got string, err error, want string) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v\n%s", what, err, got)
		return
	}
	if !strings.Contains(got, want) {
		t.Errorf("%s = %q, want it to contain %q", what, got, want)
	}
}

func fails(t *testing.T, what, got string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s succeeded, want failure: %q", what, got)
	}
}
