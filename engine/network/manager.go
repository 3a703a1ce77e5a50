package network

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"berth.dev/berth/engine"
)

// Manager manages bridge networks and containers' attachments to them. It
// implements engine.Networks plus the container-facing methods the runtime
// calls (Sandbox, RemoveSandbox, CheckPorts, Attach, Detach, Endpoints, GC).
// Any number of Managers in any number of processes may share a root: every
// change happens under the root's file lock.
type Manager struct {
	root string // networks.json, lock, synced
	run  string // netns/, dns/
	opts options
}

var _ engine.Networks = (*Manager)(nil)

// UsersFunc reports, live, which containers use which network: keys are the
// network references containers were configured with (name or ID), values
// container IDs. A network with users cannot be removed.
type UsersFunc func(ctx context.Context) (map[string][]string, error)

type options struct {
	log        *slog.Logger
	table      string
	run        string
	users      UsersFunc
	resolvConf string
}

// Option configures a Manager.
type Option func(*options)

// WithLogger sets where debug diagnostics go (default: discarded).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithTable names the nftables table of this data root (see TableName). The
// default is TableName of the root's parent directory.
func WithTable(name string) Option { return func(o *options) { o.table = name } }

// WithRunDir sets the directory for state that means nothing after a reboot:
// namespace files (netns/<id>) and the DNS helper's files (dns/). The
// default is <root>/run.
func WithRunDir(dir string) Option { return func(o *options) { o.run = dir } }

// WithUsers sets the live usage of networks by containers, for refusing to
// remove a network in use.
func WithUsers(fn UsersFunc) Option { return func(o *options) { o.users = fn } }

// WithResolvConf sets the host resolver configuration: containers' resolv.conf
// copies its search and options lines, and the DNS helper forwards to its
// nameservers (default /etc/resolv.conf).
func WithResolvConf(path string) Option { return func(o *options) { o.resolvConf = path } }

// Open returns the manager of the networks stored under root (created if
// missing). It touches no kernel state: opening is cheap.
func Open(root string, opts ...Option) (*Manager, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("network root %s: %w", root, err)
	}
	o := options{resolvConf: "/etc/resolv.conf"}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.table == "" {
		o.table = TableName(filepath.Dir(root))
	}
	if o.run == "" {
		o.run = filepath.Join(root, "run")
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("network root: %w", err)
	}
	return &Manager{root: root, run: o.run, opts: o}, nil
}

// DefaultDataRoot is the data root whose table is plainly "berth".
const DefaultDataRoot = "/var/lib/berth"

// TableName is the nftables table of a data root: "berth" for the default
// one, "berth_" + 8 hex digits of the path's SHA-256 for any other, so that
// data roots used side by side (tests) never share rules.
func TableName(dataRoot string) string {
	p := filepath.Clean(dataRoot)
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	if p == DefaultDataRoot {
		return "berth"
	}
	sum := sha256.Sum256([]byte(p))
	return "berth_" + hex.EncodeToString(sum[:4])
}

// Table returns the name of this manager's nftables table.
func (m *Manager) Table() string { return m.opts.table }

// validName adds the length limit of network names to engine.ValidName.
func validName(name string) bool { return len(name) <= 128 && engine.ValidName(name) }

// Create makes a network: its record, its bridge and its rules.
func (m *Manager) Create(ctx context.Context, cfg engine.NetworkConfig) (engine.Network, error) {
	if !validName(cfg.Name) {
		return engine.Network{}, fmt.Errorf("network name %q: must be 1-128 of [a-zA-Z0-9_.-], starting with a letter or digit: %w", cfg.Name, engine.ErrInvalid)
	}
	if cfg.Name == engine.NetworkModeHost || cfg.Name == engine.NetworkModeNone {
		return engine.Network{}, fmt.Errorf("network name %q is reserved: %w", cfg.Name, engine.ErrInvalid)
	}
	if cfg.Gateway != "" && cfg.Subnet == "" {
		return engine.Network{}, fmt.Errorf("network %s: a gateway needs a subnet: %w", cfg.Name, engine.ErrInvalid)
	}
	if cfg.Driver != "" && cfg.Driver != "bridge" {
		return engine.Network{}, fmt.Errorf("network %s: driver %q: only bridge is supported: %w", cfg.Name, cfg.Driver, engine.ErrUnsupported)
	}
	var out engine.Network
	err := m.locked(ctx, func(d *db) error {
		for _, n := range d.Networks {
			if n.Name == cfg.Name {
				return fmt.Errorf("network %s: %w", cfg.Name, engine.ErrExists)
			}
		}
		n, err := m.create(ctx, d, cfg)
		if err != nil {
			return err
		}
		out = m.view(d, n)
		return nil
	})
	return out, err
}

// create makes a network with d locked.
func (m *Manager) create(ctx context.Context, d *db, cfg engine.NetworkConfig) (*netRecord, error) {
	cfg.Driver = "bridge"
	hl, err := lockHost(ctx)
	if err != nil {
		return nil, err
	}
	defer hl.Release()
	h, err := hostHandle()
	if err != nil {
		return nil, err
	}
	defer h.Close()

	m.sweepOrphans(h)
	taken, err := hostPrefixes(h)
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", cfg.Name, err)
	}
	owner := map[netip.Prefix]string{}
	for _, n := range d.Networks {
		p := n.subnet()
		taken = append(taken, p)
		owner[p] = "network " + n.Name
	}
	var subnet netip.Prefix
	var gw netip.Addr
	if cfg.Subnet != "" {
		if subnet, gw, err = parseSubnet(cfg.Subnet, cfg.Gateway); err != nil {
			return nil, fmt.Errorf("network %s: %w", cfg.Name, err)
		}
		for _, t := range taken {
			if t.Overlaps(subnet) {
				what := owner[t]
				if what == "" {
					what = "host route " + t.String()
				}
				return nil, fmt.Errorf("network %s: subnet %s overlaps %s: %w", cfg.Name, subnet, what, engine.ErrConflict)
			}
		}
	} else {
		var prefer netip.Prefix
		if cfg.Name == DefaultNetwork {
			prefer = defaultBridgeSubnet
		}
		if subnet, err = pickSubnet(taken, prefer); err != nil {
			return nil, fmt.Errorf("network %s: %w", cfg.Name, err)
		}
		if subnet, gw, err = parseSubnet(subnet.String(), cfg.Gateway); err != nil {
			return nil, fmt.Errorf("network %s: %w", cfg.Name, err)
		}
	}
	cfg.Subnet, cfg.Gateway = subnet.String(), gw.String()
	id := newID()
	n := &netRecord{ID: id, Name: cfg.Name, Created: time.Now().UTC(), Config: cfg, Bridge: bridgeName(id)}
	if ok, err := linkExists(h, n.Bridge); err != nil || ok {
		return nil, fmt.Errorf("network %s: bridge name %s is taken: %w", cfg.Name, n.Bridge, engine.ErrConflict)
	}
	// The record names the bridge before the bridge exists: a crash from here
	// on leaves something GC and Remove can find.
	d.Networks = append(d.Networks, n)
	d.RulesGen++
	if err := m.saveAll(d); err != nil {
		d.removeNetwork(id)
		return nil, err
	}
	undo := func(cause error) error {
		_ = deleteLink(h, n.Bridge)
		d.removeNetwork(id)
		d.RulesGen++
		if err := m.saveAll(d); err == nil {
			_ = m.syncRules(d)
		}
		return fmt.Errorf("network %s: %w", cfg.Name, cause)
	}
	if _, err := m.ensureBridge(h, n); err != nil {
		return nil, undo(err)
	}
	if err := m.syncRules(d); err != nil {
		return nil, undo(err)
	}
	m.opts.log.Debug("network created", "network", n.Name, "id", n.ID, "subnet", n.Config.Subnet, "bridge", n.Bridge)
	return n, nil
}

// Inspect returns one network by name, ID or unique ID prefix.
func (m *Manager) Inspect(ctx context.Context, nameOrID string) (engine.Network, error) {
	d, err := m.load()
	if err != nil {
		return engine.Network{}, err
	}
	n, err := d.network(nameOrID)
	if err != nil {
		return engine.Network{}, err
	}
	return m.view(d, n), nil
}

// List returns the networks whose labels match, in creation order.
func (m *Manager) List(ctx context.Context, opts engine.ListOptions) ([]engine.Network, error) {
	d, err := m.load()
	if err != nil {
		return nil, err
	}
	var out []engine.Network
	for _, n := range d.Networks {
		if engine.MatchLabels(n.Config.Labels, opts.Labels) {
			out = append(out, m.view(d, n))
		}
	}
	return out, nil
}

// Remove deletes a network, its bridge and its rules. ErrInUse while a
// container is attached to it or configured to join it.
func (m *Manager) Remove(ctx context.Context, nameOrID string) error {
	// Usage comes from the container runtime; ask before taking the lock, as
	// the runtime may hold its own locks while it calls Attach.
	users, err := m.users(ctx)
	if err != nil {
		return err
	}
	return m.locked(ctx, func(d *db) error {
		n, err := d.network(nameOrID)
		if err != nil {
			return err
		}
		if ids := d.usersOf(n, users); len(ids) > 0 {
			return fmt.Errorf("network %s is used by %s: %w", n.Name, describeIDs(ids), engine.ErrInUse)
		}
		return m.remove(d, n)
	})
}

// remove deletes n with d locked: bridge first, record last, so that a crash
// leaves a record to retry with.
func (m *Manager) remove(d *db, n *netRecord) error {
	h, err := hostHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	if err := deleteLink(h, n.Bridge); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	d.removeNetwork(n.ID)
	d.RulesGen++
	if err := m.saveAll(d); err != nil {
		return err
	}
	if err := m.syncRules(d); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	m.opts.log.Debug("network removed", "network", n.Name, "id", n.ID)
	return nil
}

// Prune removes every network no container uses, except the default network
// (as Docker never prunes its predefined ones), and returns their names.
func (m *Manager) Prune(ctx context.Context) ([]string, error) {
	users, err := m.users(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	err = m.locked(ctx, func(d *db) error {
		for _, n := range slices.Clone(d.Networks) {
			if n.Name == DefaultNetwork || len(d.usersOf(n, users)) > 0 {
				continue
			}
			if err := m.remove(d, n); err != nil {
				return err
			}
			removed = append(removed, n.Name)
		}
		return nil
	})
	return removed, err
}

func (m *Manager) users(ctx context.Context) (map[string][]string, error) {
	if m.opts.users == nil {
		return nil, nil
	}
	u, err := m.opts.users(ctx)
	if err != nil {
		return nil, fmt.Errorf("network users: %w", err)
	}
	return u, nil
}

// usersOf returns the IDs of the containers that use n: attached now, or
// configured to join it.
func (d *db) usersOf(n *netRecord, configured map[string][]string) []string {
	set := map[string]bool{}
	for cid := range d.endpointsOn(n.ID) {
		set[cid] = true
	}
	for ref, ids := range configured {
		if ref == n.Name || ref == n.ID || (len(ref) >= 12 && strings.HasPrefix(n.ID, ref)) {
			for _, id := range ids {
				set[id] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

func describeIDs(ids []string) string {
	short := make([]string, len(ids))
	for i, id := range ids {
		short[i] = shortID(id)
	}
	s := "container"
	if len(ids) > 1 {
		s += "s"
	}
	return s + " " + strings.Join(short, ", ")
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// view is the engine's view of a network.
func (m *Manager) view(d *db, n *netRecord) engine.Network {
	out := engine.Network{ID: n.ID, Name: n.Name, Created: n.Created, Config: n.Config, Bridge: n.Bridge}
	if eps := d.endpointsOn(n.ID); len(eps) > 0 {
		out.Containers = map[string]engine.EndpointStatus{}
		for cid, ep := range eps {
			out.Containers[cid] = ep.status(n)
		}
	}
	return out
}

func newID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sortedNetworks returns d's networks sorted by ID (for deterministic rules).
func (d *db) sortedNetworks() []*netRecord {
	ns := slices.Clone(d.Networks)
	sort.Slice(ns, func(i, j int) bool { return ns[i].ID < ns[j].ID })
	return ns
}
