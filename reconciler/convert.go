package reconciler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"berth.dev/berth/engine"
	"berth.dev/berth/reconciler/plan"
	"berth.dev/berth/spec"
)

// ImageResolver is what Convert needs of the engine's image store: the
// remote digest of a reference, asked only when the pull policy needs it.
type ImageResolver interface {
	Resolve(ctx context.Context, ref string, platform *engine.Platform) (string, error)
}

// Convert turns a manifest set into the desired state of project: engine
// configurations named and labelled for the project, image references
// resolved to digests per pull policy (ifNotPresent: the local image when
// there is one, else the registry's; always: the registry's; never: the
// local image or an error). local is the engine's list of local images
// (observed once, so that ifNotPresent costs no request); priorHashes are
// the hash labels observed on the project's objects, so that an object
// labelled by an older hash version is compared in that version.
func Convert(ctx context.Context, set *spec.Set, project string, local []engine.Image, res ImageResolver, observedHashes map[plan.Key]string) (*plan.Desired, error) {
	d := &plan.Desired{Project: project}
	cv := &converter{project: project, local: local, res: res, observed: observedHashes, images: map[string]*plan.Image{}}
	var errs []error
	for _, r := range set.Resources() {
		switch s := r.Spec.(type) {
		case *spec.NetworkSpec:
			d.Networks = append(d.Networks, cv.network(r, s))
		case *spec.VolumeSpec:
			d.Volumes = append(d.Volumes, cv.volume(r, s))
		case *spec.ImageSpec:
			if _, err := cv.image(ctx, r.Name(), s.Ref, s.PullPolicy, s.Platform, true); err != nil {
				errs = append(errs, &ChangeError{Key: plan.Key{Kind: plan.KindImage, Name: r.Name()}, Op: OpConvert, Err: err})
			}
		}
	}
	for _, r := range set.Kind(spec.KindContainer) {
		c, err := cv.container(ctx, set, r, r.Container())
		if err != nil {
			errs = append(errs, &ChangeError{Key: plan.Key{Kind: plan.KindContainer, Name: r.Name()}, Op: OpConvert, Err: err})
			continue
		}
		d.Containers = append(d.Containers, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	names := slices.Sorted(maps.Keys(cv.images))
	for _, n := range names {
		d.Images = append(d.Images, *cv.images[n])
	}
	return d, nil
}

type converter struct {
	project  string
	local    []engine.Image
	res      ImageResolver
	observed map[plan.Key]string
	images   map[string]*plan.Image // by plan name
	byRef    map[string]string      // familiar ref -> plan name
}

// hashes returns r's current hash, plus its hash in the version of the
// label observed on its object when that version is older.
func (cv *converter) hashes(r *spec.Resource, key plan.Key) plan.Hashes {
	h := plan.Hashes{Current: spec.Hash(r)}
	if o := cv.observed[key]; o != "" && o != h.Current {
		version, _, _ := strings.Cut(o, ":")
		if version != spec.HashVersion {
			if prior, err := spec.HashWith(version, r); err == nil {
				h.Prior = append(h.Prior, prior)
			}
		}
	}
	return h
}

func (cv *converter) labels(r *spec.Resource, kind plan.Kind, hash string) map[string]string {
	l := maps.Clone(r.Metadata.Labels)
	if l == nil {
		l = map[string]string{}
	}
	maps.Copy(l, ownerLabels(cv.project, kind, r.Name(), hash))
	return l
}

func (cv *converter) network(r *spec.Resource, s *spec.NetworkSpec) plan.Network {
	key := plan.Key{Kind: plan.KindNetwork, Name: r.Name()}
	h := cv.hashes(r, key)
	return plan.Network{Name: r.Name(), Hash: h, Config: engine.NetworkConfig{
		Name:     objectName(cv.project, r.Name()),
		Driver:   s.Driver,
		Subnet:   s.Subnet,
		Gateway:  s.Gateway,
		Internal: s.Internal,
		DNS:      s.DNSEnabled(),
		Labels:   cv.labels(r, plan.KindNetwork, h.Current),
	}}
}

func (cv *converter) volume(r *spec.Resource, s *spec.VolumeSpec) plan.Volume {
	key := plan.Key{Kind: plan.KindVolume, Name: r.Name()}
	h := cv.hashes(r, key)
	return plan.Volume{Name: r.Name(), Hash: h, Config: engine.VolumeConfig{
		Name:   objectName(cv.project, r.Name()),
		Driver: s.Driver,
		Labels: cv.labels(r, plan.KindVolume, h.Current),
	}}
}

// parsedRef is an image reference in the engine's familiar form.
type parsedRef struct {
	repo   string // 127.0.0.1:5000/berth/busybox, busybox
	tag    string
	digest string
}

func (p parsedRef) String() string {
	if p.digest != "" {
		return p.repo + "@" + p.digest
	}
	return p.repo + ":" + p.tag
}

// parseImageRef parses ref as the engine does: no registry means Docker
// Hub, no tag means latest; Docker Hub's registry and library/ are left out
// of the familiar form the engine reports in RepoTags and RepoDigests.
func parseImageRef(ref string) (parsedRef, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return parsedRef{}, Terminal(fmt.Errorf("image reference %q: %w", ref, err))
	}
	repo := r.Context().RepositoryStr()
	if r.Context().RegistryStr() == name.DefaultRegistry {
		if rest, ok := strings.CutPrefix(repo, "library/"); !ok || strings.Contains(rest, "/") {
			repo = r.Context().RepositoryStr()
		} else {
			repo = rest
		}
	} else {
		repo = r.Context().RegistryStr() + "/" + repo
	}
	p := parsedRef{repo: repo}
	switch r := r.(type) {
	case name.Tag:
		p.tag = r.TagStr()
	case name.Digest:
		p.digest = r.DigestStr()
	}
	return p, nil
}

// image resolves one image reference per its pull policy and records it
// under planName; a reference seen before returns the first record.
func (cv *converter) image(ctx context.Context, planName, ref string, policy spec.PullPolicy, platform spec.Platform, declared bool) (*plan.Image, error) {
	p, err := parseImageRef(ref)
	if err != nil {
		return nil, err
	}
	if cv.byRef == nil {
		cv.byRef = map[string]string{}
	}
	if n, ok := cv.byRef[p.String()]; ok {
		return cv.images[n], nil
	}
	if policy == "" {
		policy = spec.PullIfNotPresent
	}
	im := &plan.Image{Name: planName, Ref: p.String(), PullPolicy: string(policy), Declared: declared}
	var plat *engine.Platform
	if platform.OS != "" {
		plat = &engine.Platform{OS: platform.OS, Architecture: platform.Architecture, Variant: platform.Variant}
		im.Platform = plat
	}
	localImg := cv.findLocal(p)
	pinLocal := func(li *engine.Image) {
		im.ID = li.ID
		im.Digest, im.Pin = "", li.ID
		for _, rd := range li.RepoDigests {
			if repo, d, _ := strings.Cut(rd, "@"); repo == p.repo {
				im.Digest, im.Pin = d, rd
				return
			}
		}
	}
	switch {
	case p.digest != "":
		// A reference by digest is its own pin; policy only decides
		// whether pulling is allowed.
		im.Digest, im.Pin = p.digest, p.String()
		if localImg != nil {
			im.ID = localImg.ID
		} else if policy == spec.PullNever {
			return nil, Terminal(fmt.Errorf("image %s is not present locally and its pull policy is never", ref))
		}
	case policy == spec.PullNever || (policy == spec.PullIfNotPresent && localImg != nil):
		if localImg == nil {
			return nil, Terminal(fmt.Errorf("image %s is not present locally and its pull policy is never: import, build or pull it first", ref))
		}
		pinLocal(localImg)
	default: // always, or ifNotPresent without a local image
		d, err := cv.res.Resolve(ctx, p.String(), plat)
		if err != nil {
			if errors.Is(err, engine.ErrNotFound) && policy == spec.PullIfNotPresent {
				return nil, fmt.Errorf("image %s is neither present locally nor in its registry: %w", ref, err)
			}
			return nil, fmt.Errorf("resolve image %s: %w", ref, err)
		}
		im.Digest, im.Pin = d, p.repo+"@"+d
		if li := cv.findLocal(parsedRef{repo: p.repo, digest: d}); li != nil {
			im.ID = li.ID
		}
	}
	cv.images[planName] = im
	cv.byRef[p.String()] = planName
	return im, nil
}

// findLocal finds the local image p names, by tag or repo@digest.
func (cv *converter) findLocal(p parsedRef) *engine.Image {
	s := p.String()
	for i := range cv.local {
		li := &cv.local[i]
		if p.digest != "" {
			if slices.Contains(li.RepoDigests, s) {
				return li
			}
			continue
		}
		if slices.Contains(li.RepoTags, s) {
			return li
		}
	}
	return nil
}

func (cv *converter) container(ctx context.Context, set *spec.Set, r *spec.Resource, s *spec.ContainerSpec) (plan.Container, error) {
	key := plan.Key{Kind: plan.KindContainer, Name: r.Name()}
	h := cv.hashes(r, key)
	imgName, policy, platform, declared := s.Image, spec.PullIfNotPresent, spec.Platform{}, false
	if ir, ok := set.ImageFor(s.Image); ok {
		is := ir.Image()
		imgName, policy, platform, declared = ir.Name(), is.PullPolicy, is.Platform, true
	}
	if !declared {
		// An implied image is named by its reference, in familiar form.
		if p, err := parseImageRef(s.Image); err == nil {
			imgName = p.String()
		}
	}
	im, err := cv.image(ctx, imgName, s.Image, policy, platform, declared)
	if err != nil {
		return plan.Container{}, err
	}
	c := plan.Container{Name: r.Name(), Hash: h, Image: im.Name}
	cfg := engine.ContainerConfig{
		Name:       objectName(cv.project, r.Name()),
		Image:      im.Pin,
		Entrypoint: slices.Clone(s.Command),
		Cmd:        slices.Clone(s.Args),
		WorkingDir: s.WorkingDir,
		User:       s.User,
		Hostname:   s.Hostname,
		Labels:     cv.labels(r, plan.KindContainer, h.Current),
		Restart:    engine.RestartPolicy{Name: s.Restart.Name, MaximumRetryCount: s.Restart.MaxRetries},
		Resources: engine.Resources{
			MemoryBytes: s.Resources.Memory.Bytes(),
			NanoCPUs:    s.Resources.CPUs.NanoCPUs(),
			PidsLimit:   s.Resources.Pids,
		},
		StopSignal:     string(s.StopSignal),
		StopTimeout:    s.StopGracePeriod.Std(),
		ReadOnlyRootfs: s.ReadOnlyRootfs,
		Log:            engine.LogConfig{MaxSize: s.Logging.MaxSize.Bytes(), MaxFiles: s.Logging.MaxFiles},
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		cfg.Env = append(cfg.Env, k+"="+s.Env[k])
	}
	for _, m := range s.Volumes {
		em := engine.Mount{Target: m.Target, ReadOnly: m.ReadOnly}
		switch m.Type {
		case spec.MountVolume:
			em.Type, em.Source = engine.MountVolume, objectName(cv.project, m.Source)
			c.Volumes = append(c.Volumes, m.Source)
		case spec.MountBind:
			em.Type, em.Source = engine.MountBind, m.Source
		case spec.MountTmpfs:
			em.Type, em.TmpfsSize = engine.MountTmpfs, m.Size.Bytes()
		}
		cfg.Mounts = append(cfg.Mounts, em)
	}
	for _, n := range s.Networks {
		aliases := []string{r.Name()}
		for _, a := range n.Aliases {
			if !slices.Contains(aliases, a) {
				aliases = append(aliases, a)
			}
		}
		cfg.Networks = append(cfg.Networks, engine.EndpointConfig{
			Network: objectName(cv.project, n.Name), Aliases: aliases, IPv4: n.IPv4,
		})
		c.Networks = append(c.Networks, n.Name)
	}
	for _, p := range s.Ports {
		cfg.Ports = append(cfg.Ports, engine.PortBinding{HostIP: p.HostIP, HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: p.Protocol})
	}
	if hc := s.Healthcheck; hc != nil {
		cfg.Healthcheck = &engine.Healthcheck{
			Test: slices.Clone([]string(hc.Command)), Interval: hc.Interval.Std(), Timeout: hc.Timeout.Std(),
			Retries: hc.Retries, StartPeriod: hc.StartPeriod.Std(),
		}
	}
	for _, cp := range s.CapAdd {
		cfg.CapAdd = append(cfg.CapAdd, string(cp))
	}
	for _, cp := range s.CapDrop {
		cfg.CapDrop = append(cfg.CapDrop, string(cp))
	}
	var deps []string
	for _, dep := range s.DependsOn {
		c.DependsOn = append(c.DependsOn, plan.Dependency{Name: dep.Name, Condition: string(dep.Condition)})
		deps = append(deps, dep.Name)
	}
	if len(deps) > 0 {
		sort.Strings(deps)
		cfg.Labels[plan.LabelDependsOn] = strings.Join(deps, ",")
	}
	c.Config = cfg
	return c, nil
}
