package enginetest

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"berth.dev/berth/engine"
)

type fakeNetworks Fake

var _ engine.Networks = (*fakeNetworks)(nil)

type fakeVolumes Fake

var _ engine.Volumes = (*fakeVolumes)(nil)

func cloneNetwork(n *engine.Network) engine.Network {
	out := *n
	out.Config.Labels = maps.Clone(n.Config.Labels)
	out.Containers = maps.Clone(n.Containers)
	return out
}

func (f *Fake) lookupNetworkLocked(nameOrID string) (*engine.Network, error) {
	if n, ok := f.networks[nameOrID]; ok {
		return n, nil
	}
	for _, n := range f.networks {
		if n.Name == nameOrID {
			return n, nil
		}
	}
	if len(nameOrID) >= 4 && isHex(nameOrID) {
		for id, n := range f.networks {
			if strings.HasPrefix(id, nameOrID) {
				return n, nil
			}
		}
	}
	return nil, fmt.Errorf("network %s: %w", nameOrID, engine.ErrNotFound)
}

// Create makes a network, allocating a /24 from 10.89.0.0/16 unless the
// config names a subnet.
func (fn *fakeNetworks) Create(ctx context.Context, cfg engine.NetworkConfig) (engine.Network, error) {
	f := (*Fake)(fn)
	if err := ctx.Err(); err != nil {
		return engine.Network{}, err
	}
	if !nameRE.MatchString(cfg.Name) {
		return engine.Network{}, fmt.Errorf("create network %q: invalid name: %w", cfg.Name, engine.ErrInvalid)
	}
	if cfg.Driver == "" {
		cfg.Driver = "bridge"
	}
	if cfg.Driver != "bridge" {
		return engine.Network{}, fmt.Errorf("create network %s: driver %q: %w", cfg.Name, cfg.Driver, engine.ErrUnsupported)
	}
	cfg.Labels = maps.Clone(cfg.Labels)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.networks {
		if n.Name == cfg.Name {
			return engine.Network{}, fmt.Errorf("create network %s: %w", cfg.Name, engine.ErrExists)
		}
	}
	var subnet netip.Prefix
	if cfg.Subnet != "" {
		p, err := netip.ParsePrefix(cfg.Subnet)
		if err != nil || !p.Addr().Is4() {
			return engine.Network{}, fmt.Errorf("create network %s: subnet %q: %w", cfg.Name, cfg.Subnet, engine.ErrInvalid)
		}
		subnet = p.Masked()
		for _, n := range f.networks {
			if o, err := netip.ParsePrefix(n.Config.Subnet); err == nil && o.Overlaps(subnet) {
				return engine.Network{}, fmt.Errorf("create network %s: subnet %s overlaps network %s: %w", cfg.Name, subnet, n.Name, engine.ErrConflict)
			}
		}
	} else {
		for {
			f.subnets++
			if f.subnets > 255 {
				return engine.Network{}, fmt.Errorf("create network %s: address pool exhausted: %w", cfg.Name, engine.ErrConflict)
			}
			p := netip.MustParsePrefix("10.89." + strconv.Itoa(f.subnets) + ".0/24")
			free := true
			for _, n := range f.networks {
				if o, err := netip.ParsePrefix(n.Config.Subnet); err == nil && o.Overlaps(p) {
					free = false
				}
			}
			if free {
				subnet = p
				break
			}
		}
	}
	cfg.Subnet = subnet.String()
	if cfg.Gateway == "" {
		cfg.Gateway = subnet.Addr().Next().String()
	} else if gw, err := netip.ParseAddr(cfg.Gateway); err != nil || !subnet.Contains(gw) {
		return engine.Network{}, fmt.Errorf("create network %s: gateway %q outside %s: %w", cfg.Name, cfg.Gateway, subnet, engine.ErrInvalid)
	}
	id := randomID()
	n := &engine.Network{ID: id, Name: cfg.Name, Created: time.Now(), Config: cfg, Bridge: "berth" + id[:10]}
	f.networks[id] = n
	f.publishLocked("network", "create", id, n.Name, n.Config.Labels)
	return cloneNetwork(n), nil
}

// Inspect returns one network.
func (fn *fakeNetworks) Inspect(ctx context.Context, nameOrID string) (engine.Network, error) {
	f := (*Fake)(fn)
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.lookupNetworkLocked(nameOrID)
	if err != nil {
		return engine.Network{}, err
	}
	return cloneNetwork(n), nil
}

// List returns networks whose labels match.
func (fn *fakeNetworks) List(ctx context.Context, opts engine.ListOptions) ([]engine.Network, error) {
	f := (*Fake)(fn)
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []engine.Network
	for _, n := range f.networks {
		if engine.MatchLabels(n.Config.Labels, opts.Labels) {
			out = append(out, cloneNetwork(n))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes a network no container is attached to.
func (fn *fakeNetworks) Remove(ctx context.Context, nameOrID string) error {
	f := (*Fake)(fn)
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.lookupNetworkLocked(nameOrID)
	if err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	if users := f.networkUsersLocked(n); len(users) > 0 {
		return fmt.Errorf("remove network %s: used by container %s: %w", n.Name, users[0], engine.ErrInUse)
	}
	delete(f.networks, n.ID)
	f.publishLocked("network", "destroy", n.ID, n.Name, n.Config.Labels)
	return nil
}

// Prune removes networks no container is attached to.
func (fn *fakeNetworks) Prune(ctx context.Context) ([]string, error) {
	f := (*Fake)(fn)
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for id, n := range f.networks {
		if len(f.networkUsersLocked(n)) == 0 {
			delete(f.networks, id)
			names = append(names, n.Name)
			f.publishLocked("network", "destroy", n.ID, n.Name, n.Config.Labels)
		}
	}
	sort.Strings(names)
	return names, nil
}

// networkUsersLocked lists the containers attached to n or configured
// with it (even stopped ones: removing the network would strand them).
func (f *Fake) networkUsersLocked(n *engine.Network) []string {
	var names []string
	for _, c := range f.containers {
		if _, ok := n.Containers[c.c.ID]; ok {
			names = append(names, c.c.Name)
			continue
		}
		for _, ec := range c.c.Config.Networks {
			if ec.Network == n.Name || ec.Network == n.ID {
				names = append(names, c.c.Name)
				break
			}
		}
	}
	sort.Strings(names)
	return names
}

// attachLocked connects a starting container to its networks.
func (f *Fake) attachLocked(c *fakeContainer) {
	if len(c.c.Endpoints) > 0 {
		return // restarts keep their attachment
	}
	for i, ec := range c.c.Config.Networks {
		n, err := f.lookupNetworkLocked(ec.Network)
		if err != nil {
			continue // checked at start
		}
		ip := ec.IPv4
		p := netip.MustParsePrefix(n.Config.Subnet)
		if ip == "" {
			taken := map[string]bool{n.Config.Gateway: true}
			for _, e := range n.Containers {
				taken[strings.Split(e.IPv4, "/")[0]] = true
			}
			for a := p.Addr().Next(); p.Contains(a); a = a.Next() {
				if !taken[a.String()] {
					ip = a.String()
					break
				}
			}
		}
		id := c.c.ID
		mac := "02:42:" + id[0:2] + ":" + id[2:4] + ":" + id[4:6] + ":" + strconv.FormatInt(int64(10+i), 16)
		ep := engine.EndpointStatus{
			Network: n.Name, NetworkID: n.ID, Interface: "eth" + strconv.Itoa(i),
			IPv4: ip + "/" + strconv.Itoa(p.Bits()), Gateway: n.Config.Gateway, MacAddress: mac,
			Aliases: slices.Clone(ec.Aliases),
		}
		if n.Containers == nil {
			n.Containers = map[string]engine.EndpointStatus{}
		}
		n.Containers[c.c.ID] = ep
		c.c.Endpoints = append(c.c.Endpoints, ep)
	}
}

// detachLocked releases a container's endpoints when it stops for good.
func (f *Fake) detachLocked(c *fakeContainer) {
	for _, ep := range c.c.Endpoints {
		if n, ok := f.networks[ep.NetworkID]; ok {
			delete(n.Containers, c.c.ID)
		}
	}
	c.c.Endpoints = nil
}

// ----------------------------------------------------------------- volumes

func (f *Fake) volumeLocked(v *engine.Volume) engine.Volume {
	out := *v
	out.Config.Labels = maps.Clone(v.Config.Labels)
	out.UsedBy = nil
	for _, c := range f.containers {
		for _, m := range c.c.Config.Mounts {
			if m.Type == engine.MountVolume && m.Source == v.Name {
				out.UsedBy = append(out.UsedBy, c.c.ID)
				break
			}
		}
	}
	sort.Strings(out.UsedBy)
	return out
}

func (f *Fake) createVolumeLocked(cfg engine.VolumeConfig) *engine.Volume {
	cfg.Labels = maps.Clone(cfg.Labels)
	v := &engine.Volume{Name: cfg.Name, Created: time.Now(), Config: cfg, Mountpoint: "/fake/volumes/" + cfg.Name + "/_data"}
	f.volumes[cfg.Name] = v
	f.publishLocked("volume", "create", v.Name, v.Name, v.Config.Labels)
	return v
}

// Create makes a volume, or returns the existing one of that name.
func (fv *fakeVolumes) Create(ctx context.Context, cfg engine.VolumeConfig) (engine.Volume, error) {
	f := (*Fake)(fv)
	if err := ctx.Err(); err != nil {
		return engine.Volume{}, err
	}
	if !nameRE.MatchString(cfg.Name) {
		return engine.Volume{}, fmt.Errorf("create volume %q: invalid name: %w", cfg.Name, engine.ErrInvalid)
	}
	if cfg.Driver == "" {
		cfg.Driver = "local"
	}
	if cfg.Driver != "local" {
		return engine.Volume{}, fmt.Errorf("create volume %s: driver %q: %w", cfg.Name, cfg.Driver, engine.ErrUnsupported)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if v, ok := f.volumes[cfg.Name]; ok {
		return f.volumeLocked(v), nil
	}
	return f.volumeLocked(f.createVolumeLocked(cfg)), nil
}

// Inspect returns one volume.
func (fv *fakeVolumes) Inspect(ctx context.Context, name string) (engine.Volume, error) {
	f := (*Fake)(fv)
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.volumes[name]
	if !ok {
		return engine.Volume{}, fmt.Errorf("volume %s: %w", name, engine.ErrNotFound)
	}
	return f.volumeLocked(v), nil
}

// List returns volumes whose labels match.
func (fv *fakeVolumes) List(ctx context.Context, opts engine.ListOptions) ([]engine.Volume, error) {
	f := (*Fake)(fv)
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []engine.Volume
	for _, v := range f.volumes {
		if engine.MatchLabels(v.Config.Labels, opts.Labels) {
			out = append(out, f.volumeLocked(v))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes a volume no container mounts.
func (fv *fakeVolumes) Remove(ctx context.Context, name string) error {
	f := (*Fake)(fv)
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.volumes[name]
	if !ok {
		return fmt.Errorf("remove volume %s: %w", name, engine.ErrNotFound)
	}
	if used := f.volumeLocked(v).UsedBy; len(used) > 0 {
		return fmt.Errorf("remove volume %s: used by container %s: %w", name, used[0][:12], engine.ErrInUse)
	}
	delete(f.volumes, name)
	f.publishLocked("volume", "destroy", name, name, v.Config.Labels)
	return nil
}

// Prune removes volumes no container mounts.
func (fv *fakeVolumes) Prune(ctx context.Context) (engine.PruneReport, error) {
	f := (*Fake)(fv)
	f.mu.Lock()
	defer f.mu.Unlock()
	var rep engine.PruneReport
	for name, v := range f.volumes {
		if len(f.volumeLocked(v).UsedBy) == 0 {
			delete(f.volumes, name)
			rep.Deleted = append(rep.Deleted, name)
			f.publishLocked("volume", "destroy", name, name, v.Config.Labels)
		}
	}
	sort.Strings(rep.Deleted)
	return rep, nil
}

// LoseNetwork deletes a network even while containers are attached, as if
// it vanished outside the engine's control (its bridge deleted, its record
// wiped). Attached containers keep a dangling endpoint. A test hook of the
// fake, for drift tests.
func (f *Fake) LoseNetwork(nameOrID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.lookupNetworkLocked(nameOrID)
	if err != nil {
		return err
	}
	delete(f.networks, n.ID)
	f.publishLocked("network", "destroy", n.ID, n.Name, n.Config.Labels)
	return nil
}
