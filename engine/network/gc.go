package network

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// GC removes what containers that no longer exist left behind (live says
// which exist): their veths, addresses, published ports and DNS records,
// and their namespace files. It also brings the kernel back in line with
// the records after a crash or a reboot (missing bridges, a stale table),
// restarts a DNS helper that died and stops one that has nothing to serve.
// When there is nothing to do it costs a file read, a directory read and a
// stat, and takes no lock.
func (m *Manager) GC(ctx context.Context, live func(containerID string) bool) error {
	start := time.Now()
	defer func() { m.opts.log.Debug("network gc", "elapsed", time.Since(start)) }()
	d, err := m.load()
	if err != nil {
		return err
	}
	var dead []string
	for id := range d.Containers {
		if !live(id) {
			dead = append(dead, id)
		}
	}
	var stale []string
	if ents, err := os.ReadDir(m.netnsDir()); err == nil {
		for _, e := range ents {
			if validID(e.Name()) == nil && !live(e.Name()) {
				stale = append(stale, e.Name())
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("network gc: sandboxes: %w", err)
	}
	var errs []error
	if len(dead) > 0 || !m.synced(d.RulesGen) || m.dnsNeedsFix(d) {
		if err := m.locked(ctx, func(d *db) error { return m.gcLocked(ctx, d, live) }); err != nil {
			errs = append(errs, err)
		}
	}
	// Sandboxes last: detaching swaps a container's namespace, which is
	// cheaper with the sandbox still there (see release).
	for _, id := range stale {
		errs = append(errs, removeNetns(m.nsPath(id)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("network gc: %w", err)
	}
	return nil
}

// gcLocked detaches dead containers and repairs the kernel, with d locked.
func (m *Manager) gcLocked(ctx context.Context, d *db, live func(string) bool) error {
	h, err := hostHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	var errs []error
	for id, rec := range d.Containers {
		if live(id) {
			continue
		}
		m.opts.log.Debug("gc: detaching", "container", id)
		if err := m.detach(ctx, d, h, rec, false); err != nil {
			errs = append(errs, err)
		}
	}
	if !m.synced(d.RulesGen) {
		m.opts.log.Debug("gc: resyncing bridges and rules", "gen", d.RulesGen)
		for _, n := range d.Networks {
			if _, err := m.ensureBridge(h, n); err != nil {
				errs = append(errs, err)
			}
		}
		if err := m.syncRules(d); err != nil {
			errs = append(errs, err)
		}
	}
	if m.dnsNeedsFix(d) {
		if err := m.syncDNS(ctx, d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// dnsNeedsFix reports whether the helper's state disagrees with d: needed
// but dead, or running with nothing to serve.
func (m *Manager) dnsNeedsFix(d *db) bool {
	need := false
	for _, c := range d.Containers {
		if m.usesDNS(d, c) {
			need = true
			break
		}
	}
	if need {
		return !m.dnsAlive()
	}
	_, recorded := m.helperProcess()
	return recorded
}
