package container_test

import (
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container/shim"
)

func TestIsolation(t *testing.T) {
	v := newEnv(t)
	cfg := v.config("sh", "-c", `echo "pid1=$(cat /proc/1/cmdline | tr '\0' ' ')"
echo "host=$(hostname)"
grep Cap /proc/self/status
echo "nnp=$(grep NoNewPrivs /proc/self/status | tr -d ' \t')"
echo "--mounts"; cat /proc/self/mountinfo; echo "--end"
echo "env=$(env | sort | tr '\n' ' ')"
echo "pwd=$(pwd)"`)
	cfg.Hostname = "isolated"
	cfg.Env = []string{"FOO=bar"}
	cfg.AutoRemove = true
	out, ex, err := v.run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Code != 0 {
		t.Fatalf("exit %d: %s", ex.Code, out)
	}
	want := []string{
		`pid1=sh -c echo "pid1=`,
		"host=isolated\n",
		"nnp=NoNewPrivs:1\n",
		"FOO=bar", "HOSTNAME=isolated", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
		"pwd=/\n",
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	// Docker's default set, in every set but the ambient one.
	var mask uint64
	for _, c := range shim.DefaultCaps {
		n, _ := shim.CapNumber(c)
		mask |= 1 << n
	}
	for _, set := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd"} {
		w := fmt.Sprintf("%s:\t%016x", set, mask)
		if !strings.Contains(out, w) {
			t.Errorf("want %q in:\n%s", w, out)
		}
	}
	if !strings.Contains(out, "CapAmb:\t0000000000000000") {
		t.Errorf("ambient capabilities set:\n%s", out)
	}
	// No host mount is visible: every mount point is one the runtime made.
	mounts := out[strings.Index(out, "--mounts\n")+len("--mounts\n") : strings.Index(out, "--end\n")]
	allowed := []string{"/", "/proc", "/sys", "/dev", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}
	for _, line := range lines(mounts) {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := f[4]
		ok := false
		for _, a := range allowed {
			if mp == a || (a != "/" && strings.HasPrefix(mp, a+"/")) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("unexpected mount in the container: %s", line)
		}
		// The overlay's options name its layers, as Docker's do; no other
		// mount may come from the data root.
		if strings.Contains(line, v.root) && mp != "/" && mp != "/etc/hosts" && mp != "/etc/hostname" && mp != "/etc/resolv.conf" {
			t.Errorf("host path visible in the container: %s", line)
		}
	}
}

func TestMaskedAndReadOnlyPaths(t *testing.T) {
	v := newEnv(t)
	cfg := v.config("sh", "-c", `echo "keys=$(cat /proc/keys | wc -c)"; echo "timers=$(cat /proc/timer_list | wc -c)"; echo "fw=$(ls /sys/firmware | wc -l)"; echo 1 > /proc/sys/kernel/domainname && echo wrote-proc-sys; touch /sys/x && echo wrote-sys; echo 1 > /proc/irq/default_smp_affinity && echo wrote-irq; echo done`)
	cfg.AutoRemove = true
	out, _, err := v.run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "wrote") {
		t.Errorf("a protected path was writable:\n%s", out)
	}
	for _, w := range []string{"keys=0\n", "timers=0\n", "fw=0\n", "done"} {
		if !strings.Contains(out, w) {
			t.Errorf("masked paths: want %q in:\n%s", w, out)
		}
	}
}

func TestExitCodes(t *testing.T) {
	v := newEnv(t)
	for _, code := range []int{0, 1, 3, 42} {
		cfg := v.config("sh", "-c", "exit "+strconv.Itoa(code))
		cfg.AutoRemove = true
		_, ex, err := v.run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if ex.Code != code {
			t.Errorf("exit %d, want %d", ex.Code, code)
		}
	}
	// Detached: the record has it.
	c := v.start(v.config("sh", "-c", "exit 7"))
	code, err := v.rt.Wait(t.Context(), c.ID, engine.WaitNotRunning)
	if err != nil || code != 7 {
		t.Fatalf("wait = %d, %v; want 7", code, err)
	}
	if got := v.inspect(c.ID).State; got.Status != engine.StatusExited || got.ExitCode != 7 {
		t.Errorf("state %+v", got)
	}
}

func TestBadCommand(t *testing.T) {
	v := newEnv(t)
	tests := []struct {
		cmd  []string
		msg  string
		code int
	}{
		{[]string{"nosuch"}, `exec: "nosuch": executable file not found in $PATH`, 127},
		{[]string{"/nosuch"}, `exec: "/nosuch": stat /nosuch: no such file or directory`, 127},
		{[]string{"/etc/passwd"}, `exec: "/etc/passwd": permission denied`, 126},
	}
	for _, tc := range tests {
		_, _, err := v.run(v.config(tc.cmd...))
		if err == nil {
			t.Fatalf("%v: no error", tc.cmd)
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%v: error %q, want %q", tc.cmd, err, tc.msg)
		}
		if !errors.Is(err, engine.ErrInvalid) {
			t.Errorf("%v: error %v is not ErrInvalid", tc.cmd, err)
		}
		var ie *shim.InitError
		if !errors.As(err, &ie) || ie.ExitCode() != tc.code {
			t.Errorf("%v: exit code of %v, want %d", tc.cmd, err, tc.code)
		}
	}
	_, _, err := v.run(v.config("nosuch"))
	if !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("missing command: %v is not exec.ErrNotFound", err)
	}
}
