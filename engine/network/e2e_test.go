package network_test

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/enginetest"
	"berth.dev/berth/engine/local"
	"berth.dev/berth/engine/network"
)

// world is a local engine with the busybox image, on a data root of its own.
type world struct {
	t     *testing.T
	e     *local.Engine
	m     *network.Manager
	root  string
	links map[string]bool // bridges and veths the test made
}

const busybox = "busybox:net"

func newWorld(t *testing.T, resolvConf string) *world {
	t.Helper()
	enginetest.RequireRoot(t)
	enginetest.RequireFeature(t, "overlay")
	enginetest.RequireFeature(t, "nftables")
	root := t.TempDir()
	e, err := local.Open(t.Context(), local.Config{DataRoot: root, ResolvConf: resolvConf})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, e: e, m: e.Networks().(*network.Manager), root: root, links: map[string]bool{}}
	t.Cleanup(w.cleanup)
	enginetest.ImportBusybox(t, t.Context(), e, busybox)
	return w
}

// cleanup removes every container and network, and checks that nothing of
// them is left on the host.
func (w *world) cleanup() {
	t := w.t
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), time.Minute)
	defer cancel()
	cs := w.e.Containers()
	all, _ := cs.List(ctx, engine.ListContainersOptions{All: true})
	for _, c := range all {
		if t.Failed() {
			var out bytes.Buffer
			_ = cs.Logs(ctx, c.ID, engine.LogOptions{Tail: -1}, func(l engine.LogEntry) error { out.Write(l.Line); return nil })
			t.Logf("logs of %s:\n%s", c.Name, out.String())
		}
		if err := cs.Remove(ctx, c.ID, engine.RemoveContainerOptions{Force: true}); err != nil {
			t.Errorf("cleanup: remove %s: %v", c.Name, err)
		}
	}
	nets, _ := w.e.Networks().List(ctx, engine.ListOptions{})
	for _, n := range nets {
		if err := w.e.Networks().Remove(ctx, n.ID); err != nil {
			t.Errorf("cleanup: remove network %s: %v", n.Name, err)
		}
	}
	w.e.Close()
	// Monitors of removed containers may still be on their way out.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		procs := processesOf(w.root)
		if len(procs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("processes left: %v", procs)
			break
		}
	}
	for name := range w.links {
		if !network.LinkGone(name) {
			t.Errorf("link %s left", name)
		}
	}
	if network.TableExists(t, w.m.Table()) {
		t.Errorf("nftables table %s left", w.m.Table())
	}
	if ents, _ := os.ReadDir(w.m.NetnsDir()); len(ents) > 0 {
		t.Errorf("namespace files left: %v", ents)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(network.HelperPids(w.m.DNSDir())) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if pids := network.HelperPids(w.m.DNSDir()); len(pids) > 0 {
		t.Errorf("dns helper left: %v", pids)
	}
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil && bytes.Contains(data, []byte(w.root)) {
		t.Errorf("mounts of %s left", w.root)
	}
}

// processesOf lists the processes whose command line names root.
func processesOf(root string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if data, err := os.ReadFile(p); err == nil && bytes.Contains(data, []byte(root)) {
			out = append(out, strings.ReplaceAll(string(data), "\x00", " "))
		}
	}
	return out
}

func (w *world) network(cfg engine.NetworkConfig) engine.Network {
	w.t.Helper()
	n, err := w.e.Networks().Create(w.t.Context(), cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	w.links[n.Bridge] = true
	return n
}

// container starts a detached container serving its /etc over HTTP on port
// 80 (GET /hostname answers its name) and waits until it answers.
func (w *world) container(name string, eps []engine.EndpointConfig, ports ...engine.PortBinding) engine.Container {
	w.t.Helper()
	ctx := w.t.Context()
	cs := w.e.Containers()
	c, err := cs.Create(ctx, engine.ContainerConfig{
		Name: name, Hostname: name, Image: busybox, Cmd: []string{"/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/etc"},
		Networks: eps, Ports: ports,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	if err := cs.Start(ctx, c.ID); err != nil {
		w.t.Fatal(err)
	}
	if c, err = cs.Inspect(ctx, c.ID); err != nil {
		w.t.Fatal(err)
	}
	if len(c.Endpoints) != len(eps) {
		w.t.Fatalf("container %s endpoints = %+v", name, c.Endpoints)
	}
	for _, ep := range c.Endpoints {
		w.links[network.VethName(c.ID, ep.NetworkID)] = true
	}
	network.WaitTCP(w.t, net.JoinHostPort(addrOf(c, 0), "80"))
	return c
}

func addrOf(c engine.Container, i int) string {
	return netip.MustParsePrefix(c.Endpoints[i].IPv4).Addr().String()
}

// exec runs busybox with args in c and returns its output.
func (w *world) exec(c engine.Container, args ...string) (string, error) {
	var out enginetest.SyncBuffer
	ctx, cancel := context.WithTimeout(w.t.Context(), 20*time.Second)
	defer cancel()
	code, err := w.e.Containers().Exec(ctx, c.ID, engine.ExecConfig{Cmd: args}, engine.Streams{Stdout: &out, Stderr: &out})
	if err == nil && code != 0 {
		err = &exitError{code}
	}
	return out.String(), err
}

// get fetches url in c; busybox's wget -T crashes, so the time limit comes
// from busybox timeout.
func (w *world) get(c engine.Container, url string, limit int) (string, error) {
	return w.exec(c, "timeout", strconv.Itoa(limit), "wget", "-q", "-O", "-", url)
}

type exitError struct{ code int }

func (e *exitError) Error() string { return "exit status " + strconv.Itoa(e.code) }

// TestContainers is the list, with real containers: two containers
// on one network by name, isolation from another network, a published port
// from the host's loopback and address, from outside and from containers,
// outbound NAT, an internal network, DNS forwarding, and nothing left.
func TestContainers(t *testing.T) {
	t.Parallel()
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	up := network.NewUpstream(t, resolv)
	w := newWorld(t, resolv)
	hostIP := network.HostIPv4(t)
	out := network.NewOutside(t)

	w.network(engine.NetworkConfig{Name: "front", DNS: true})
	w.network(engine.NetworkConfig{Name: "back", DNS: true})
	w.network(engine.NetworkConfig{Name: "int", DNS: true, Internal: true})
	port := network.FreePort(t, "tcp")
	a := w.container("a", []engine.EndpointConfig{{Network: "front", Aliases: []string{"web"}}}, engine.PortBinding{HostPort: port, ContainerPort: 80})
	b := w.container("b", []engine.EndpointConfig{{Network: "front"}})
	c := w.container("c", []engine.EndpointConfig{{Network: "back"}})
	i := w.container("i", []engine.EndpointConfig{{Network: "int"}})

	hostL, err := net.Listen("tcp4", net.JoinHostPort(hostIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	network.HTTPServer(t, hostL, "host")
	hostURL := "http://" + hostL.Addr().String() + "/"
	var outL net.Listener
	network.InNetns(t, out.NS, func() (err error) {
		outL, err = net.Listen("tcp4", net.JoinHostPort(out.PeerIP, "8081"))
		return err
	})
	network.HTTPServer(t, outL, "outside")
	outURL := "http://" + outL.Addr().String() + "/"
	published := func(host string) string {
		return "http://" + net.JoinHostPort(host, strconv.Itoa(int(port))) + "/hostname"
	}

	check := func(what string, got string, err error, want string) {
		t.Helper()
		if err != nil || !strings.Contains(got, want) {
			t.Errorf("%s = %q, %v; want %q", what, got, err, want)
		}
	}
	refused := func(what string, got string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s succeeded (%q), want a failure", what, got)
		}
	}

	t.Run("by name", func(t *testing.T) {
		t.Parallel()
		got, err := w.exec(b, "ping", "-c", "1", "-W", "2", "a")
		check("b: ping a", got, err, "1 packets received")
		got, err = w.get(b, "http://a/hostname", 3)
		check("b: wget http://a/hostname", got, err, "a")
		got, err = w.get(b, "http://web/hostname", 3)
		check("b: wget http://web/hostname (alias)", got, err, "a")
	})
	t.Run("isolation", func(t *testing.T) {
		t.Parallel()
		got, err := w.get(c, "http://"+addrOf(a, 0)+"/hostname", 1)
		refused("c (network back): wget a's address", got, err)
		got, err = w.exec(c, "/bin/busybox", "nslookup", "a")
		refused("c: nslookup a", got, err)
	})
	t.Run("published port", func(t *testing.T) {
		t.Parallel()
		for _, host := range []string{"127.0.0.1", hostIP} {
			got, err := network.HTTPGet(nil, published(host))
			check("host: GET "+published(host), got, err, "a")
		}
		got, err := network.HTTPGet(network.DialIn(t, out.NS), published(out.HostIP))
		check("outside: GET "+published(out.HostIP), got, err, "a")
		got, err = w.get(c, published(hostIP), 3)
		check("c (other network): wget "+published(hostIP), got, err, "a")
		got, err = w.get(b, published(hostIP), 3)
		check("b (same network): wget "+published(hostIP), got, err, "a")
	})
	t.Run("outbound NAT", func(t *testing.T) {
		t.Parallel()
		got, err := w.get(b, hostURL, 3)
		check("b: wget the host's address", got, err, "hello from host")
		got, err = w.get(b, outURL, 3)
		check("b: wget outside", got, err, "hello from outside, you are "+out.HostIP)
	})
	t.Run("internal", func(t *testing.T) {
		t.Parallel()
		got, err := w.get(i, hostURL, 1)
		refused("i: wget the host's address", got, err)
		got, err = w.get(i, outURL, 1)
		refused("i: wget outside", got, err)
		got, err = w.exec(i, "/bin/busybox", "nslookup", "i")
		check("i: nslookup i", got, err, addrOf(i, 0))
	})
	t.Run("dns forwarding", func(t *testing.T) {
		t.Parallel()
		got, err := w.exec(b, "/bin/busybox", "nslookup", "outside.test")
		check("b: nslookup outside.test", got, err, "203.0.113.7")
		got, err = w.exec(b, "/bin/busybox", "nslookup", "nosuch.test")
		refused("b: nslookup nosuch.test", got, err)
		if !strings.Contains(got, "NXDOMAIN") {
			t.Errorf("nslookup nosuch.test = %q, want NXDOMAIN", got)
		}
		if len(up.Queries) == 0 {
			t.Errorf("the upstream saw no query")
		}
	})
}
