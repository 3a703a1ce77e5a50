package image

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"berth.dev/berth/engine"
)

// addImage adds or updates the record of image id. Repo digests accumulate;
// the rest describes the content last recorded.
func (ix *repoIndex) addImage(id string, rec imageRecord) {
	old := ix.Images[id]
	if old != nil {
		rec.RepoDigests = append(append([]string(nil), old.RepoDigests...), rec.RepoDigests...)
		if rec.Digest == "" {
			rec.Digest = old.Digest
		}
		if rec.Index == "" && rec.Manifest == old.Manifest {
			rec.Index = old.Index
		}
		rec.Added = old.Added
	}
	if rec.Added.IsZero() {
		rec.Added = time.Now().UTC()
	}
	ix.Images[id] = &rec
}

// load reads and verifies the manifest and config of an image.
func (s *Store) load(id string, rec *imageRecord) ([]byte, *v1.Manifest, *v1.ConfigFile, error) {
	md, err := parseDigest(rec.Manifest)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("image %s: %w", id, err)
	}
	mfData, err := s.readBlob(md, -1)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("image %s: manifest: %w", id, err)
	}
	mf, err := v1.ParseManifest(bytes.NewReader(mfData))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("image %s: manifest: %w", id, err)
	}
	if mf.Config.Digest.String() != id {
		return nil, nil, nil, fmt.Errorf("image %s: manifest names config %s: store damaged", id, mf.Config.Digest)
	}
	cfgData, err := s.readBlob(mf.Config.Digest, mf.Config.Size)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("image %s: config: %w", id, err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgData))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("image %s: config: %w", id, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(mf.Layers) {
		return nil, nil, nil, fmt.Errorf("image %s: %d layers but %d diff IDs: %w", id, len(mf.Layers), len(cfg.RootFS.DiffIDs), engine.ErrInvalid)
	}
	return mfData, mf, cfg, nil
}

// describe builds the engine's view of one image.
func (s *Store) describe(ix *repoIndex, id string) (engine.Image, error) {
	rec, ok := ix.Images[id]
	if !ok {
		return engine.Image{}, fmt.Errorf("image %s: %w", id, engine.ErrNotFound)
	}
	_, mf, cfg, err := s.load(id, rec)
	if err != nil {
		return engine.Image{}, err
	}
	img := engine.Image{
		ID:          id,
		Digest:      rec.Digest,
		RepoTags:    ix.tagsOf(id),
		RepoDigests: slices.Clone(rec.RepoDigests),
		Created:     cfg.Created.Time,
		Platform:    engine.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant},
		Config:      imageConfig(cfg.Config),
	}
	if img.Platform.OS == "" {
		img.Platform = rec.Platform
	}
	for _, l := range mf.Layers {
		img.Size += l.Size
	}
	for _, d := range cfg.RootFS.DiffIDs {
		img.Layers = append(img.Layers, d.String())
	}
	return img, nil
}

// imageConfig converts the runtime part of an OCI config.
func imageConfig(c v1.Config) engine.ImageConfig {
	out := engine.ImageConfig{
		User:       c.User,
		Env:        slices.Clone(c.Env),
		Entrypoint: slices.Clone(c.Entrypoint),
		Cmd:        slices.Clone(c.Cmd),
		WorkingDir: c.WorkingDir,
		StopSignal: c.StopSignal,
	}
	if len(c.Labels) > 0 {
		out.Labels = make(map[string]string, len(c.Labels))
		for k, v := range c.Labels {
			out.Labels[k] = v
		}
	}
	for p := range c.ExposedPorts {
		out.ExposedPorts = append(out.ExposedPorts, p)
	}
	sort.Strings(out.ExposedPorts)
	for v := range c.Volumes {
		out.Volumes = append(out.Volumes, v)
	}
	sort.Strings(out.Volumes)
	return out
}

// Inspect returns a local image by name:tag, name@digest, digest, image ID
// or unique ID prefix.
func (s *Store) Inspect(ctx context.Context, ref string) (engine.Image, error) {
	ix, err := s.readIndex()
	if err != nil {
		return engine.Image{}, err
	}
	id, err := s.lookup(ix, ref)
	if err != nil {
		return engine.Image{}, err
	}
	return s.describe(ix, id)
}

// List returns every local image, newest first.
func (s *Store) List(ctx context.Context) ([]engine.Image, error) {
	ix, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	out := make([]engine.Image, 0, len(ix.Images))
	for id := range ix.Images {
		img, err := s.describe(ix, id)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Tag makes target (name[:tag]) name the image source names.
func (s *Store) Tag(ctx context.Context, source, target string) error {
	t, err := s.parseTagRef(target)
	if err != nil {
		return fmt.Errorf("tag: %w", err)
	}
	return s.updateIndex(ctx, func(ix *repoIndex) error {
		id, err := s.lookup(ix, source)
		if err != nil {
			return fmt.Errorf("tag %s: %w", source, err)
		}
		ix.Tags[familiarTag(t)] = id
		return nil
	})
}

// RootfsInfo is what a container needs of its image to build its root
// filesystem.
type RootfsInfo struct {
	// ImageID is the image's config digest (sha256:...).
	ImageID string
	// Config is the runtime part of the image config.
	Config engine.ImageConfig
	// Lowers are absolute snapshot directories in overlayfs lowerdir order:
	// the top-most layer FIRST. Every one exists when Rootfs returns. An
	// image without layers gets one empty directory, since overlayfs needs
	// at least one lower layer.
	Lowers []string
}

// Rootfs resolves ref (name:tag, name@digest, image ID or unique ID prefix)
// and makes sure every layer of the image is unpacked, unpacking missing
// snapshots from the stored layer blobs. Mount the container root with
//
//	lowerdir=image.LowerDir(info.Lowers),upperdir=...,workdir=...
//
// (see LowerDir for very deep images). Snapshots are shared between images
// and must never be written to.
func (s *Store) Rootfs(ctx context.Context, ref string) (RootfsInfo, error) {
	// Shared gc lock first: no prune may delete a blob this is about to
	// unpack.
	gc, err := s.lockContent(ctx)
	if err != nil {
		return RootfsInfo{}, fmt.Errorf("rootfs: %w", err)
	}
	defer gc.Release()
	ix, err := s.readIndex()
	if err != nil {
		return RootfsInfo{}, fmt.Errorf("rootfs: %w", err)
	}
	id, err := s.lookup(ix, ref)
	if err != nil {
		return RootfsInfo{}, fmt.Errorf("rootfs: %w", err)
	}
	_, mf, cfg, err := s.load(id, ix.Images[id])
	if err != nil {
		return RootfsInfo{}, fmt.Errorf("rootfs: %w", err)
	}
	info := RootfsInfo{ImageID: id, Config: imageConfig(cfg.Config)}
	if len(mf.Layers) == 0 {
		dir, err := s.emptySnapshot()
		if err != nil {
			return RootfsInfo{}, fmt.Errorf("rootfs: %w", err)
		}
		info.Lowers = []string{dir + "/fs"}
		return info, nil
	}
	dirs, err := s.ensureSnapshots(ctx, mf.Layers, cfg.RootFS.DiffIDs)
	if err != nil {
		return RootfsInfo{}, fmt.Errorf("rootfs %s: %w", ref, err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		info.Lowers = append(info.Lowers, dirs[i]+"/fs")
	}
	return info, nil
}

// shortID is the 12-hex form of an image ID people read.
func shortID(id string) string {
	h := strings.TrimPrefix(id, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}
