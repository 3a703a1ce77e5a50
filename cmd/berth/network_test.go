package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/enginetest"
	"berth.dev/berth/engine/network"
)

// TestRunNetworkFlags runs berth as a user does with --network, -p, --ip
// and --network-alias, and checks that removing everything leaves nothing
// of the networks on the host.
func TestRunNetworkFlags(t *testing.T) {
	enginetest.RequireRoot(t)
	enginetest.RequireFeature(t, "overlay")
	enginetest.RequireFeature(t, "nftables")
	bin := buildBerth(t)
	root := t.TempDir()
	berth := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"--data-root", root, "--config", ""}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("berth %v: %w: %s", args, err, errb.String())
		}
		return out.String(), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := berth(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var bridges []string
	t.Cleanup(func() {
		out, _ := berth("ps", "-aq", "--no-trunc")
		for _, id := range strings.Fields(out) {
			_, _ = berth("rm", "-f", id)
		}
		if _, err := berth("network", "rm", "--force", "front", network.DefaultNetwork); err != nil {
			t.Error(err)
		}
		for _, br := range bridges {
			if _, err := netlink.LinkByName(br); err == nil {
				t.Errorf("bridge %s left", br)
			}
		}
		if c, err := nftables.New(); err == nil {
			if _, err := c.ListTableOfFamily(network.TableName(root), nftables.TableFamilyIPv4); err == nil {
				t.Errorf("nftables table %s left", network.TableName(root))
			}
		}
		if ents, _ := os.ReadDir(filepath.Join(root, "run", "netns")); len(ents) > 0 {
			t.Errorf("namespace files left: %v", ents)
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(hostLeaks(root, nil)) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if leaks := hostLeaks(root, nil); len(leaks) > 0 {
			t.Errorf("left on the host:\n%s", strings.Join(leaks, "\n"))
		}
	})
	tarball := filepath.Join(t.TempDir(), "busybox.tar")
	data, err := enginetest.BusyboxTar()
	if err != nil {
		t.Skip(err)
	}
	if err := os.WriteFile(tarball, data, 0o644); err != nil {
		t.Fatal(err)
	}
	must("image", "import", "--change", `CMD ["sh"]`, tarball, "busybox:net")

	var front engine.Network
	if err := json.Unmarshal([]byte(must("-o", "json", "network", "create", "front")), &front); err != nil {
		t.Fatal(err)
	}
	bridges = append(bridges, front.Bridge)
	static := netip.MustParsePrefix(front.Config.Subnet).Addr().As4()
	static[3] = 50
	ip := netip.AddrFrom4(static).String()
	port := freeTCPPort(t)
	must("run", "-d", "--name", "a", "--hostname", "a", "--network", "front", "--ip", ip, "--network-alias", "web",
		"-p", "127.0.0.1:"+strconv.Itoa(port)+":80", "busybox:net", "/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
	waitTCP(t, net.JoinHostPort(ip, "80"))

	var cs []engine.Container
	if err := json.Unmarshal([]byte(must("inspect", "a")), &cs); err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || len(cs[0].Endpoints) != 1 || cs[0].Endpoints[0].IPv4 != ip+"/24" || cs[0].Endpoints[0].Aliases[0] != "web" {
		t.Fatalf("inspect a: endpoints %+v", cs)
	}

	// By alias from a container of the same network, started and removed
	// by one berth run --rm.
	if out := must("run", "--rm", "--network", "front", "busybox:net", "wget", "-q", "-O", "-", "http://web/hostname"); out != "a\n" {
		t.Errorf("wget http://web/hostname = %q", out)
	}
	// The published port, on 127.0.0.1 only.
	if got, err := httpGet("http://127.0.0.1:" + strconv.Itoa(port) + "/hostname"); err != nil || got != "a\n" {
		t.Errorf("GET 127.0.0.1:%d = %q, %v", port, got, err)
	}
	// -p 127.0.0.1::80 publishes on a host port chosen at start, which
	// berth port and ps show and which answers.
	must("run", "-d", "--name", "c", "--hostname", "c", "--network", "front", "-p", "127.0.0.1::80",
		"busybox:net", "/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
	hostPort := strings.TrimSpace(must("port", "c", "80"))
	if _, p, ok := strings.Cut(hostPort, "127.0.0.1:"); !ok || p == "0" || p == "" {
		t.Fatalf("berth port c 80 = %q", hostPort)
	}
	if out := must("ps", "--filter", "name=c"); !strings.Contains(out, hostPort+"->80/tcp") {
		t.Errorf("ps does not show %s->80/tcp:\n%s", hostPort, out)
	}
	waitTCP(t, hostPort)
	if got, err := httpGet("http://" + hostPort + "/hostname"); err != nil || got != "c\n" {
		t.Errorf("GET %s = %q, %v", hostPort, got, err)
	}
	// Another container on the default network reaches it through the
	// host, as 127.0.0.1 is not published there: through the bridge's
	// gateway it is refused.
	out, err := berth("run", "--rm", "busybox:net", "timeout", "2", "wget", "-q", "-O", "-", "http://"+front.Config.Gateway+":"+strconv.Itoa(port)+"/hostname")
	if err == nil {
		t.Errorf("the port published on 127.0.0.1 answered on the gateway: %q", out)
	}
	var def engine.Network
	if err := json.Unmarshal([]byte(must("network", "inspect", network.DefaultNetwork)), &[]*engine.Network{&def}); err != nil {
		t.Fatal(err)
	}
	bridges = append(bridges, def.Bridge)
	if def.Config.DNS {
		t.Errorf("the default network resolves names")
	}
	// none: only lo.
	if out := must("run", "--rm", "--network", "none", "busybox:net", "ls", "/sys/class/net"); out != "lo\n" {
		t.Errorf("--network none: interfaces %q", out)
	}
	// A host port already published is refused before anything is made.
	_, err = berth("run", "-d", "--name", "b", "--network", "front", "-p", "127.0.0.1:"+strconv.Itoa(port)+":80", "busybox:net", "sleep", "60")
	if err == nil || !strings.Contains(err.Error(), "already published by container a") {
		t.Errorf("second publisher: err = %v", err)
	}
	if out := must("ps", "-aq", "--filter", "name=b"); strings.TrimSpace(out) != "" {
		t.Errorf("the refused container exists: %q", out)
	}
	// A network in use cannot be removed.
	if _, err := berth("network", "rm", "front"); err == nil || !strings.Contains(err.Error(), "in use") && !strings.Contains(err.Error(), "used by") {
		t.Errorf("network rm of a used network: %v", err)
	}
}

func freeTCPPort(t *testing.T) int {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitTCP(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not answer: %v", addr, err)
		}
	}
}

func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
