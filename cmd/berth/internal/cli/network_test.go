package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/enginetest"
	"berth.dev/berth/engine/network"
)

func TestNetworkCLI(t *testing.T) {
	enginetest.RequireRoot(t)
	enginetest.RequireFeature(t, "nftables")
	root := t.TempDir()
	var bridges []string
	t.Cleanup(func() {
		berthCLI(t, root, "", "network", "rm", "--force", "front", "back")
		for _, br := range bridges {
			if _, err := netlink.LinkByName(br); err == nil {
				t.Errorf("bridge %s left", br)
			}
		}
		if c, err := nftables.New(); err == nil {
			if _, err := c.ListTableOfFamily(network.TableName(root), nftables.TableFamilyIPv4); err == nil {
				t.Errorf("table %s left", network.TableName(root))
			}
		}
	})

	id := strings.TrimSpace(mustBerth(t, root, "network", "create", "--label", "tier=web", "front"))
	if len(id) != 64 {
		t.Fatalf("create printed %q, want a network ID", id)
	}
	var back engine.Network
	out := mustBerth(t, root, "-o", "json", "network", "create", "--subnet", "10.251.3.0/24", "--internal", "--disable-dns", "back")
	if err := json.Unmarshal([]byte(out), &back); err != nil {
		t.Fatal(err)
	}
	if back.Config.Subnet != "10.251.3.0/24" || back.Config.Gateway != "10.251.3.1" || !back.Config.Internal || back.Config.DNS {
		t.Errorf("created %+v", back.Config)
	}
	var nets []engine.Network
	if err := json.Unmarshal([]byte(mustBerth(t, root, "network", "inspect", "front", "back")), &nets); err != nil {
		t.Fatal(err)
	}
	if len(nets) != 2 || nets[0].ID != id || !nets[0].Config.DNS {
		t.Fatalf("inspect = %+v", nets)
	}
	for _, n := range nets {
		bridges = append(bridges, n.Bridge)
		if _, err := netlink.LinkByName(n.Bridge); err != nil {
			t.Errorf("bridge %s: %v", n.Bridge, err)
		}
	}

	sw := max(len(nets[0].Config.Subnet), len("10.251.3.0/24")) + 3
	gw := max(len(nets[0].Config.Gateway), len("10.251.3.1")) + 3
	want := "NETWORK ID     NAME    DRIVER   " + pad("SUBNET", sw) + pad("GATEWAY", gw) + "OPTIONS\n" +
		id[:12] + "   front   bridge   " + pad(nets[0].Config.Subnet, sw) + pad(nets[0].Config.Gateway, gw) + "dns\n" +
		back.ID[:12] + "   back    bridge   " + pad("10.251.3.0/24", sw) + pad("10.251.3.1", gw) + "internal\n"
	if diff := cmp.Diff(want, mustBerth(t, root, "network", "ls")); diff != "" {
		t.Errorf("network ls (-want +got):\n%s", diff)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"network", "ls", "-q", "-f", "label=tier=web"}, id[:12] + "\n"},
		{[]string{"network", "ls", "-q", "-f", "name=ac"}, back.ID[:12] + "\n"},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, mustBerth(t, root, tc.args...)); diff != "" {
			t.Errorf("berth %s (-want +got):\n%s", strings.Join(tc.args, " "), diff)
		}
	}

	errorsWant := []struct {
		args []string
		want string
	}{
		{[]string{"network", "create", "front"}, "already exists"},
		{[]string{"network", "create", "--subnet", "10.251.3.128/25", "other"}, "overlaps network back"},
		{[]string{"network", "create", "--driver", "overlay", "other"}, "not supported"},
		{[]string{"network", "inspect", "nosuch"}, "not found"},
		{[]string{"network", "rm", "nosuch"}, "not found"},
	}
	for _, tc := range errorsWant {
		code, _, errOut := berthCLI(t, root, "", tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("berth %s: exit %d, %q; want an error with %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}

	if out := mustBerth(t, root, "network", "rm", "back"); out != "back\n" {
		t.Errorf("rm printed %q", out)
	}
	if out := mustBerth(t, root, "network", "prune", "--force"); out != "Deleted Networks:\nfront\n" {
		t.Errorf("prune printed %q", out)
	}
	if out := mustBerth(t, root, "network", "ls", "-q"); out != "" {
		t.Errorf("ls after prune = %q", out)
	}
}

func pad(s string, n int) string { return s + strings.Repeat(" ", max(1, n-len(s))) }
