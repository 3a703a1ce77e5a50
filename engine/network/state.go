package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/state"
)

// db is the manager's whole state, in two files. networks.json holds the
// networks and is written durably (fsync), as networks outlive reboots.
// attachments.json holds what only means something while the kernel has it:
// containers' endpoints and ports, allocation cursors, the rules
// generation. It is replaced atomically but without fsync (a container
// start and stop write it twice), and it carries the boot ID: after a
// reboot, or a power loss that cut it short, it reads as empty, which is
// what the kernel has then too.
type db struct {
	// Networks in creation order.
	Networks []*netRecord
	// Containers that have endpoints, by container ID.
	Containers map[string]*ctrRecord
	// RulesGen counts changes that alter the nftables table; the synced
	// marker records the last generation the kernel has.
	RulesGen uint64
}

type networksFile struct {
	Networks []*netRecord `json:"networks"`
}

type attachmentsFile struct {
	BootID     string                `json:"bootID"`
	RulesGen   uint64                `json:"rulesGen"`
	Next       map[string]netip.Addr `json:"next,omitempty"` // allocation cursor by network ID
	Containers map[string]*ctrRecord `json:"containers"`
}

// netRecord is one network.
type netRecord struct {
	ID      string               `json:"id"`
	Name    string               `json:"name"`
	Created time.Time            `json:"created"`
	Config  engine.NetworkConfig `json:"config"` // Subnet and Gateway filled in
	Bridge  string               `json:"bridge"`
	// Next is where the next dynamic allocation starts looking, so a
	// released address is not handed out again at once (as Docker's IPAM).
	// It is kept with the attachments.
	Next netip.Addr `json:"-"`
}

func (n *netRecord) subnet() netip.Prefix {
	p, _ := netip.ParsePrefix(n.Config.Subnet)
	return p
}

func (n *netRecord) gateway() netip.Addr {
	a, _ := netip.ParseAddr(n.Config.Gateway)
	return a
}

// ctrRecord is what one container holds.
type ctrRecord struct {
	ID       string               `json:"id"`
	Name     string               `json:"name,omitempty"`
	Hostname string               `json:"hostname,omitempty"`
	NsPath   string               `json:"nsPath,omitempty"`
	Ports    []engine.PortBinding `json:"ports,omitempty"`
	// Endpoints in interface order (eth0 first).
	Endpoints []*endpoint `json:"endpoints,omitempty"`
}

// endpoint is one container's attachment to one network.
type endpoint struct {
	Network  string     `json:"network"` // network ID
	Ifname   string     `json:"ifname"`  // in the container: eth0, eth1, ...
	HostVeth string     `json:"hostVeth"`
	IP       netip.Addr `json:"ip"`
	MAC      string     `json:"mac"`
	Aliases  []string   `json:"aliases,omitempty"`
}

func (m *Manager) networksPath() string    { return filepath.Join(m.root, "networks.json") }
func (m *Manager) attachmentsPath() string { return filepath.Join(m.root, "attachments.json") }
func (m *Manager) lockPath() string        { return filepath.Join(m.root, "lock") }
func (m *Manager) syncedPath() string      { return filepath.Join(m.root, "synced") }

// load reads the state; missing files are an empty state. Readers need no
// lock: the files are replaced by rename, never rewritten in place.
func (m *Manager) load() (*db, error) {
	var nf networksFile
	if err := state.ReadJSON(m.networksPath(), &nf); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("network state: %w", err)
	}
	d := &db{Networks: nf.Networks, Containers: map[string]*ctrRecord{}}
	var af attachmentsFile
	err := state.ReadJSON(m.attachmentsPath(), &af)
	boot, berr := state.BootID()
	if berr != nil {
		return nil, berr
	}
	// Unreadable (cut short by a power loss) or from another boot: nothing
	// of it exists any more.
	if err != nil || af.BootID != boot {
		return d, nil
	}
	d.RulesGen = af.RulesGen
	if af.Containers != nil {
		d.Containers = af.Containers
	}
	for _, n := range d.Networks {
		n.Next = af.Next[n.ID]
	}
	return d, nil
}

// save writes the attachments (no fsync: see db).
func (m *Manager) save(d *db) error {
	boot, err := state.BootID()
	if err != nil {
		return err
	}
	af := attachmentsFile{BootID: boot, RulesGen: d.RulesGen, Next: map[string]netip.Addr{}, Containers: d.Containers}
	for _, n := range d.Networks {
		if n.Next.IsValid() {
			af.Next[n.ID] = n.Next
		}
	}
	data, err := json.MarshalIndent(af, "", "  ")
	if err != nil {
		return fmt.Errorf("network state: %w", err)
	}
	if err := writeFileNoSync(m.attachmentsPath(), append(data, '\n')); err != nil {
		return fmt.Errorf("network state: %w", err)
	}
	return nil
}

// saveAll writes the attachments, then the networks durably. In that order
// a crash in between leaves a rules generation the kernel does not have,
// which GC repairs.
func (m *Manager) saveAll(d *db) error {
	if err := m.save(d); err != nil {
		return err
	}
	if err := state.WriteJSON(m.networksPath(), networksFile{Networks: d.Networks}); err != nil {
		return fmt.Errorf("network state: %w", err)
	}
	return nil
}

// locked runs fn with the state file locked and loaded. Changes fn makes to
// the state are its own to save (it knows the order of record and kernel
// changes that keeps a crash recoverable).
func (m *Manager) locked(ctx context.Context, fn func(d *db) error) error {
	l, err := state.Acquire(ctx, m.lockPath())
	if err != nil {
		return fmt.Errorf("network state: %w", err)
	}
	defer l.Release()
	d, err := m.load()
	if err != nil {
		return err
	}
	return fn(d)
}

// network finds a network by name, ID or unique ID prefix.
func (d *db) network(ref string) (*netRecord, error) {
	if ref == "" {
		return nil, fmt.Errorf("network name is empty: %w", engine.ErrInvalid)
	}
	var found *netRecord
	for _, n := range d.Networks {
		if n.Name == ref || n.ID == ref {
			return n, nil
		}
		if strings.HasPrefix(n.ID, ref) {
			if found != nil {
				return nil, fmt.Errorf("network %s: ID prefix is ambiguous: %w", ref, engine.ErrNotFound)
			}
			found = n
		}
	}
	if found == nil {
		return nil, fmt.Errorf("network %s: %w", ref, engine.ErrNotFound)
	}
	return found, nil
}

func (d *db) networkByID(id string) *netRecord {
	for _, n := range d.Networks {
		if n.ID == id {
			return n
		}
	}
	return nil
}

func (d *db) removeNetwork(id string) {
	d.Networks = slices.DeleteFunc(d.Networks, func(n *netRecord) bool { return n.ID == id })
}

// endpointsOn returns the endpoints on network id, with their containers.
func (d *db) endpointsOn(id string) map[string]*endpoint {
	eps := map[string]*endpoint{}
	for cid, c := range d.Containers {
		for _, ep := range c.Endpoints {
			if ep.Network == id {
				eps[cid] = ep
			}
		}
	}
	return eps
}

// status is the engine's view of an endpoint.
func (ep *endpoint) status(n *netRecord) engine.EndpointStatus {
	st := engine.EndpointStatus{
		NetworkID:  ep.Network,
		Interface:  ep.Ifname,
		MacAddress: ep.MAC,
		Aliases:    ep.Aliases,
	}
	if n != nil {
		st.Network = n.Name
		st.IPv4 = netip.PrefixFrom(ep.IP, n.subnet().Bits()).String()
		st.Gateway = n.Config.Gateway
	}
	return st
}
