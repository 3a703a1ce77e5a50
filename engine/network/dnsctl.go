package network

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"berth.dev/berth/engine/reexec"
	"berth.dev/berth/engine/state"
)

// dnsRole is the DNS helper's role name (argv[0] of the re-executed binary).
const dnsRole = "berth-dns"

// dnsRecords is what the helper serves; the manager writes it to
// <run>/dns/records.json before telling the helper to reload.
type dnsRecords struct {
	Upstreams []string     `json:"upstreams"`
	Networks  []dnsNetwork `json:"networks"`
}

type dnsNetwork struct {
	ID        string        `json:"id"`
	Name      string        `json:"name"`
	Gateway   netip.Addr    `json:"gateway"`
	Subnet    netip.Prefix  `json:"subnet"`
	Endpoints []dnsEndpoint `json:"endpoints"`
}

type dnsEndpoint struct {
	Container string     `json:"container"`
	IP        netip.Addr `json:"ip"`
	// Names are the container's name, its aliases on this network and its
	// short ID, as Docker's embedded DNS resolves them.
	Names []string `json:"names"`
}

func (m *Manager) dnsDir() string         { return filepath.Join(m.run, "dns") }
func (m *Manager) dnsRecordsPath() string { return filepath.Join(m.dnsDir(), "records.json") }
func (m *Manager) dnsHelperPath() string  { return filepath.Join(m.dnsDir(), "helper.json") }

// dnsSocket is the helper's control socket: abstract (no path length limit,
// gone with the process) and named after the table, so one per data root.
// Binding it is what makes the helper a singleton.
func (m *Manager) dnsSocket() string { return "@berth-dns/" + m.opts.table }

// dnsRecordsOf is what the helper must serve for d: every network with DNS
// and at least one endpoint.
func (m *Manager) dnsRecordsOf(d *db) dnsRecords {
	recs := dnsRecords{Upstreams: m.upstreams()}
	for _, n := range d.sortedNetworks() {
		if !n.Config.DNS {
			continue
		}
		dn := dnsNetwork{ID: n.ID, Name: n.Name, Gateway: n.gateway(), Subnet: n.subnet()}
		eps := d.endpointsOn(n.ID)
		for _, cid := range slices.Sorted(maps.Keys(eps)) {
			ep, c := eps[cid], d.Containers[cid]
			var names []string
			if validDNSName(c.Name) {
				names = append(names, c.Name)
			}
			names = append(names, ep.Aliases...)
			names = append(names, shortID(cid))
			dn.Endpoints = append(dn.Endpoints, dnsEndpoint{Container: cid, IP: ep.IP, Names: dedupe(names)})
		}
		if len(dn.Endpoints) > 0 {
			recs.Networks = append(recs.Networks, dn)
		}
	}
	return recs
}

// syncDNS brings the helper in line with d: records written and reloaded (the
// helper started if needed), or the helper stopped when nothing needs it.
// It returns once the helper serves the new records, so a container started
// right after Attach finds its peers.
func (m *Manager) syncDNS(ctx context.Context, d *db) error {
	recs := m.dnsRecordsOf(d)
	if len(recs.Networks) == 0 {
		return m.stopDNS(ctx)
	}
	data, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return fmt.Errorf("dns records: %w", err)
	}
	if err := os.MkdirAll(m.dnsDir(), 0o700); err != nil {
		return fmt.Errorf("dns records: %w", err)
	}
	if err := writeFileNoSync(m.dnsRecordsPath(), data); err != nil {
		return fmt.Errorf("dns records: %w", err)
	}
	reply, err := m.dnsControl(ctx, "reload")
	switch {
	case err == nil && reply == "ok":
		return nil
	case err == nil:
		return fmt.Errorf("dns helper: %s", reply)
	case errors.Is(err, errNoHelper) || !m.dnsAlive():
		// A helper killed a moment ago may still have its socket for a
		// moment; the new one waits for the name to be free.
		return m.startDNS(ctx)
	default:
		return err
	}
}

var errNoHelper = errors.New("dns helper not running")

// dnsControl sends one command to the helper and returns its one-line reply.
func (m *Manager) dnsControl(ctx context.Context, cmd string) (string, error) {
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "unix", m.dnsSocket())
	if err != nil {
		if errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENOENT) {
			return "", errNoHelper
		}
		return "", fmt.Errorf("dns helper: %w", err)
	}
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = c.SetDeadline(deadline)
	if _, err := c.Write([]byte(cmd + "\n")); err != nil {
		return "", fmt.Errorf("dns helper: %w", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("dns helper: no reply: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// startDNS starts the helper, detached in its own session, and waits until it
// serves the records (it reports on an inherited pipe).
func (m *Manager) startDNS(ctx context.Context) error {
	logf, err := os.OpenFile(filepath.Join(m.dnsDir(), "helper.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("dns helper: %w", err)
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("dns helper: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(reexec.Self(), m.dnsDir(), m.dnsSocket())
	cmd.Args[0] = dnsRole
	cmd.Env = []string{reexec.EnvGuard + "=1", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Dir = "/"
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("dns helper: start: %w", err)
	}
	// Reap it if it ever exits while this process still runs.
	go func() { _ = cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = r.SetReadDeadline(deadline)
	line, err := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	if err != nil || line != "ok" {
		_ = cmd.Process.Kill()
		if line == "" {
			line = fmt.Sprint(err)
		}
		return fmt.Errorf("dns helper did not start: %s (see %s)", line, logf.Name())
	}
	m.opts.log.Debug("dns helper started", "pid", cmd.Process.Pid)
	return nil
}

// helperProcess reads the helper's recorded identity.
func (m *Manager) helperProcess() (state.Process, bool) {
	var p state.Process
	if err := state.ReadJSON(m.dnsHelperPath(), &p); err != nil {
		return state.Process{}, false
	}
	return p, true
}

// dnsAlive reports whether the helper runs (its recorded pid and start time
// name a live process).
func (m *Manager) dnsAlive() bool {
	p, ok := m.helperProcess()
	return ok && p.Alive()
}

// stopDNS makes the helper exit (it does when told to reload with nothing
// to serve) and waits until it is gone; a helper that does not answer is
// killed, after checking that its recorded pid is still it.
func (m *Manager) stopDNS(ctx context.Context) error {
	if err := os.Remove(m.dnsRecordsPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("dns records: %w", err)
	}
	p, recorded := m.helperProcess()
	if _, err := m.dnsControl(ctx, "reload"); err != nil && !errors.Is(err, errNoHelper) {
		m.opts.log.Debug("dns helper reload", "err", err)
	}
	if recorded && p.Alive() {
		if !waitExit(p, 2*time.Second) && p.Alive() {
			_ = unix.Kill(p.Pid, unix.SIGKILL)
			waitExit(p, 2*time.Second)
		}
	}
	if err := os.Remove(m.dnsHelperPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("dns helper: %w", err)
	}
	return nil
}

// waitExit waits until p exits, with a pidfd (no polling), up to timeout.
func waitExit(p state.Process, timeout time.Duration) bool {
	fd, err := unix.PidfdOpen(p.Pid, 0)
	if err != nil {
		return !p.Alive()
	}
	defer unix.Close(fd)
	if !p.Alive() { // the pid may have been reused before the pidfd was taken
		return true
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(timeout.Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n > 0
	}
}
