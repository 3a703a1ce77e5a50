package enginetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"berth.dev/berth/engine"
)

type fakeImages Fake

var _ engine.Images = (*fakeImages)(nil)

type fakeImage struct {
	img engine.Image
}

// fakeRepo is what the fake's built-in registry holds for one repository.
type fakeRepo struct {
	tags      map[string]string        // tag -> manifest digest
	manifests map[string]*engine.Image // manifest digest -> image
}

// ref is a parsed reference in the engine's familiar form.
type ref struct {
	repo   string // familiar repository: busybox, 127.0.0.1:5000/app
	tag    string // "" when by digest
	digest string // "" when by tag
}

func (r ref) String() string {
	if r.digest != "" {
		return r.repo + "@" + r.digest
	}
	return r.repo + ":" + r.tag
}

func parseRef(s string) (ref, error) {
	r, err := name.ParseReference(s)
	if err != nil {
		return ref{}, fmt.Errorf("reference %q: %w: %w", s, err, engine.ErrInvalid)
	}
	out := ref{repo: familiar(r.Context())}
	switch r := r.(type) {
	case name.Tag:
		out.tag = r.TagStr()
	case name.Digest:
		out.digest = r.DigestStr()
	}
	return out, nil
}

// familiar leaves out Docker Hub's registry and "library/" namespace, as
// Docker prints references.
func familiar(r name.Repository) string {
	repo := r.RepositoryStr()
	if r.RegistryStr() == name.DefaultRegistry {
		if rest, ok := strings.CutPrefix(repo, "library/"); ok && !strings.Contains(rest, "/") {
			return rest
		}
		return repo
	}
	return r.RegistryStr() + "/" + repo
}

func digestOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func hostPlatform() engine.Platform {
	return engine.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

func cloneImage(i *engine.Image) engine.Image {
	c := *i
	c.RepoTags = slices.Clone(i.RepoTags)
	c.RepoDigests = slices.Clone(i.RepoDigests)
	c.Layers = slices.Clone(i.Layers)
	c.Config.Env = slices.Clone(i.Config.Env)
	c.Config.Entrypoint = slices.Clone(i.Config.Entrypoint)
	c.Config.Cmd = slices.Clone(i.Config.Cmd)
	c.Config.Labels = maps.Clone(i.Config.Labels)
	c.Config.ExposedPorts = slices.Clone(i.Config.ExposedPorts)
	c.Config.Volumes = slices.Clone(i.Config.Volumes)
	return c
}

// lookupLocked finds a local image by tag, repo@digest, digest, or (prefix
// of) ID.
func (f *Fake) lookupImageLocked(s string) (*fakeImage, error) {
	if strings.HasPrefix(s, "sha256:") {
		if im, ok := f.images[s]; ok {
			return im, nil
		}
		for _, im := range f.images {
			if im.img.Digest == s {
				return im, nil
			}
		}
	}
	if len(s) >= 4 && isHex(s) {
		var found *fakeImage
		for id, im := range f.images {
			if strings.HasPrefix(strings.TrimPrefix(id, "sha256:"), s) {
				if found != nil {
					return nil, fmt.Errorf("image %s: ambiguous prefix: %w", s, engine.ErrInvalid)
				}
				found = im
			}
		}
		if found != nil {
			return found, nil
		}
	}
	r, err := parseRef(s)
	if err != nil {
		if strings.HasPrefix(s, "sha256:") {
			return nil, fmt.Errorf("image %s: %w", s, engine.ErrNotFound)
		}
		return nil, err
	}
	if r.digest != "" {
		for _, im := range f.images {
			if slices.Contains(im.img.RepoDigests, r.String()) {
				return im, nil
			}
		}
		return nil, fmt.Errorf("image %s: %w", s, engine.ErrNotFound)
	}
	if id, ok := f.tags[r.String()]; ok {
		return f.images[id], nil
	}
	return nil, fmt.Errorf("image %s: %w", s, engine.ErrNotFound)
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// tagLocked points tag at image id, moving it off any other image.
func (f *Fake) tagLocked(tag string, id string) {
	if old, ok := f.tags[tag]; ok && old != id {
		if im := f.images[old]; im != nil {
			im.img.RepoTags = slices.DeleteFunc(im.img.RepoTags, func(t string) bool { return t == tag })
		}
	}
	f.tags[tag] = id
	im := f.images[id]
	if !slices.Contains(im.img.RepoTags, tag) {
		im.img.RepoTags = append(im.img.RepoTags, tag)
		sort.Strings(im.img.RepoTags)
	}
}

func (f *Fake) usersOfImageLocked(id string) []string {
	var ids []string
	for _, c := range f.containers {
		if c.c.ImageID == id {
			ids = append(ids, c.c.ID)
		}
	}
	return ids
}

// Pull fetches ref from the fake's registry (what Push sent there).
func (fi *fakeImages) Pull(ctx context.Context, s string, opts engine.PullOptions) (engine.Image, error) {
	f := (*Fake)(fi)
	if err := ctx.Err(); err != nil {
		return engine.Image{}, err
	}
	r, err := parseRef(s)
	if err != nil {
		return engine.Image{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	repo := f.registry[r.repo]
	if repo == nil {
		return engine.Image{}, fmt.Errorf("pull %s: repository %s: %w", s, r.repo, engine.ErrNotFound)
	}
	digest := r.digest
	if digest == "" {
		digest = repo.tags[r.tag]
	}
	remote := repo.manifests[digest]
	if remote == nil {
		return engine.Image{}, fmt.Errorf("pull %s: manifest unknown: %w", s, engine.ErrNotFound)
	}
	if opts.Progress != nil {
		for _, l := range remote.Layers {
			opts.Progress(engine.PullProgress{Digest: l, Status: "done"})
		}
	}
	im, ok := f.images[remote.ID]
	if !ok {
		img := cloneImage(remote)
		img.RepoTags, img.RepoDigests = nil, nil
		im = &fakeImage{img: img}
		f.images[img.ID] = im
	}
	im.img.Digest = digest
	rd := r.repo + "@" + digest
	if !slices.Contains(im.img.RepoDigests, rd) {
		im.img.RepoDigests = append(im.img.RepoDigests, rd)
		sort.Strings(im.img.RepoDigests)
	}
	if r.tag != "" {
		f.tagLocked(r.String(), im.img.ID)
	}
	f.publishLocked("image", "pull", im.img.ID, r.String(), nil)
	return cloneImage(&im.img), nil
}

// Push sends a local image to the fake's registry under its repository and
// tag; the registry's manifest digest becomes the image's Digest.
func (fi *fakeImages) Push(ctx context.Context, s string, opts engine.PushOptions) error {
	f := (*Fake)(fi)
	if err := ctx.Err(); err != nil {
		return err
	}
	r, err := parseRef(s)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	im, err := f.lookupImageLocked(s)
	if err != nil {
		return fmt.Errorf("push %s: %w", s, err)
	}
	digest := digestOf("manifest", im.img.ID)
	repo := f.registry[r.repo]
	if repo == nil {
		repo = &fakeRepo{tags: map[string]string{}, manifests: map[string]*engine.Image{}}
		f.registry[r.repo] = repo
	}
	snap := cloneImage(&im.img)
	snap.Digest = digest
	repo.manifests[digest] = &snap
	if r.tag != "" {
		repo.tags[r.tag] = digest
	}
	if opts.Progress != nil {
		for _, l := range im.img.Layers {
			opts.Progress(engine.PullProgress{Digest: l, Status: "pushing"})
		}
	}
	im.img.Digest = digest
	rd := r.repo + "@" + digest
	if !slices.Contains(im.img.RepoDigests, rd) {
		im.img.RepoDigests = append(im.img.RepoDigests, rd)
		sort.Strings(im.img.RepoDigests)
	}
	f.publishLocked("image", "push", im.img.ID, r.String(), nil)
	return nil
}

// Import makes a one-layer image of the rootfs stream.
func (fi *fakeImages) Import(ctx context.Context, rootfs io.Reader, s string, opts engine.ImportOptions) (engine.Image, error) {
	f := (*Fake)(fi)
	r, err := parseRef(s)
	if err != nil {
		return engine.Image{}, err
	}
	if r.tag == "" {
		return engine.Image{}, fmt.Errorf("import %s: a tag is needed here, not a digest: %w", s, engine.ErrInvalid)
	}
	h := sha256.New()
	n, err := io.Copy(h, rootfs)
	if err != nil {
		return engine.Image{}, fmt.Errorf("import %s: %w", s, err)
	}
	layer := "sha256:" + hex.EncodeToString(h.Sum(nil))
	cfg, err := applyChanges(opts.Changes)
	if err != nil {
		return engine.Image{}, fmt.Errorf("import %s: %w", s, err)
	}
	plat := hostPlatform()
	if opts.Platform != nil {
		plat = *opts.Platform
	}
	cj, _ := json.Marshal(cfg)
	id := digestOf("config", layer, string(cj), plat.String())
	if err := ctx.Err(); err != nil {
		return engine.Image{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	im, ok := f.images[id]
	if !ok {
		im = &fakeImage{img: engine.Image{ID: id, Size: n, Created: time.Now(), Platform: plat, Config: cfg, Layers: []string{layer}}}
		f.images[id] = im
	}
	f.tagLocked(r.String(), id)
	f.publishLocked("image", "import", id, r.String(), nil)
	return cloneImage(&im.img), nil
}

// applyChanges turns Dockerfile-style instructions into an image config.
func applyChanges(changes []string) (engine.ImageConfig, error) {
	var cfg engine.ImageConfig
	for _, ch := range changes {
		instr, arg, _ := strings.Cut(strings.TrimSpace(ch), " ")
		arg = strings.TrimSpace(arg)
		list := func() []string {
			var l []string
			if strings.HasPrefix(arg, "[") && json.Unmarshal([]byte(arg), &l) == nil {
				return l
			}
			return []string{"/bin/sh", "-c", arg}
		}
		switch strings.ToUpper(instr) {
		case "CMD":
			cfg.Cmd = list()
		case "ENTRYPOINT":
			cfg.Entrypoint = list()
		case "ENV":
			k, v, ok := strings.Cut(arg, "=")
			if !ok {
				k, v, _ = strings.Cut(arg, " ")
			}
			cfg.Env = append(cfg.Env, strings.TrimSpace(k)+"="+strings.TrimSpace(v))
		case "WORKDIR":
			cfg.WorkingDir = arg
		case "USER":
			cfg.User = arg
		case "LABEL":
			k, v, _ := strings.Cut(arg, "=")
			if cfg.Labels == nil {
				cfg.Labels = map[string]string{}
			}
			cfg.Labels[k] = strings.Trim(v, `"`)
		case "EXPOSE":
			p := arg
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			cfg.ExposedPorts = append(cfg.ExposedPorts, p)
		case "STOPSIGNAL":
			cfg.StopSignal = arg
		case "VOLUME":
			cfg.Volumes = append(cfg.Volumes, list()...)
		default:
			return cfg, fmt.Errorf("change %q: unknown instruction: %w", ch, engine.ErrInvalid)
		}
	}
	return cfg, nil
}

// Tag makes target name the image source names.
func (fi *fakeImages) Tag(ctx context.Context, source, target string) error {
	f := (*Fake)(fi)
	t, err := parseRef(target)
	if err != nil {
		return err
	}
	if t.tag == "" {
		return fmt.Errorf("tag %s: a tag is needed here, not a digest: %w", target, engine.ErrInvalid)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	im, err := f.lookupImageLocked(source)
	if err != nil {
		return fmt.Errorf("tag %s: %w", source, err)
	}
	f.tagLocked(t.String(), im.img.ID)
	f.publishLocked("image", "tag", im.img.ID, t.String(), nil)
	return nil
}

// Inspect returns a local image.
func (fi *fakeImages) Inspect(ctx context.Context, s string) (engine.Image, error) {
	f := (*Fake)(fi)
	f.mu.Lock()
	defer f.mu.Unlock()
	im, err := f.lookupImageLocked(s)
	if err != nil {
		return engine.Image{}, err
	}
	return cloneImage(&im.img), nil
}

// List returns every local image, by ID.
func (fi *fakeImages) List(ctx context.Context) ([]engine.Image, error) {
	f := (*Fake)(fi)
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]engine.Image, 0, len(f.images))
	for _, im := range f.images {
		out = append(out, cloneImage(&im.img))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Remove untags a tag, or deletes an image named by ID or digest.
func (fi *fakeImages) Remove(ctx context.Context, s string, opts engine.RemoveImageOptions) ([]string, error) {
	f := (*Fake)(fi)
	f.mu.Lock()
	defer f.mu.Unlock()
	im, err := f.lookupImageLocked(s)
	if err != nil {
		return nil, fmt.Errorf("remove image %s: %w", s, err)
	}
	var report []string
	if r, err := parseRef(s); err == nil && r.tag != "" && f.tags[r.String()] == im.img.ID {
		if len(im.img.RepoTags) > 1 {
			delete(f.tags, r.String())
			im.img.RepoTags = slices.DeleteFunc(im.img.RepoTags, func(t string) bool { return t == r.String() })
			f.publishLocked("image", "untag", im.img.ID, r.String(), nil)
			return []string{"untagged: " + r.String()}, nil
		}
	}
	if users := f.usersOfImageLocked(im.img.ID); len(users) > 0 && !opts.Force {
		return nil, fmt.Errorf("remove image %s: used by container %s: %w", s, users[0][:12], engine.ErrInUse)
	}
	for _, t := range im.img.RepoTags {
		delete(f.tags, t)
		report = append(report, "untagged: "+t)
	}
	delete(f.images, im.img.ID)
	report = append(report, "deleted: "+im.img.ID)
	f.publishLocked("image", "delete", im.img.ID, "", nil)
	return report, nil
}

// Prune deletes untagged images no container uses.
func (fi *fakeImages) Prune(ctx context.Context) (engine.PruneReport, error) {
	f := (*Fake)(fi)
	f.mu.Lock()
	defer f.mu.Unlock()
	var rep engine.PruneReport
	for id, im := range f.images {
		if len(im.img.RepoTags) == 0 && len(f.usersOfImageLocked(id)) == 0 {
			delete(f.images, id)
			rep.Deleted = append(rep.Deleted, id)
			rep.SpaceReclaimed += im.img.Size
		}
	}
	sort.Strings(rep.Deleted)
	return rep, nil
}

// Resolve returns the digest ref names in the fake's registry.
func (fi *fakeImages) Resolve(ctx context.Context, s string, platform *engine.Platform) (string, error) {
	f := (*Fake)(fi)
	if err := ctx.Err(); err != nil {
		return "", err
	}
	r, err := parseRef(s)
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	repo := f.registry[r.repo]
	if repo == nil {
		return "", fmt.Errorf("resolve %s: repository %s: %w", s, r.repo, engine.ErrNotFound)
	}
	if r.digest != "" {
		if _, ok := repo.manifests[r.digest]; !ok {
			return "", fmt.Errorf("resolve %s: manifest unknown: %w", s, engine.ErrNotFound)
		}
		return r.digest, nil
	}
	d, ok := repo.tags[r.tag]
	if !ok {
		return "", fmt.Errorf("resolve %s: tag unknown: %w", s, engine.ErrNotFound)
	}
	return d, nil
}
