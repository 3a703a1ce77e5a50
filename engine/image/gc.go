package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/state"
)

// Remove untags ref and deletes the image once nothing names it, as
// `docker rmi` does. ref may be name:tag (untag), name@digest (drop that repo
// digest), or an image ID or prefix (all its names; with several tags that
// needs opts.Force). Deleting an image a container uses fails with
// engine.ErrInUse unless opts.Force, in which case the image loses its names
// but stays, with its snapshots, until no container uses it (Prune then
// removes it). It returns Docker's "Untagged: ..." and "Deleted: ..." lines.
func (s *Store) Remove(ctx context.Context, ref string, opts engine.RemoveImageOptions) ([]string, error) {
	users, err := s.users(ctx)
	if err != nil {
		return nil, fmt.Errorf("remove %s: %w", ref, err)
	}
	var out []string
	deleted := false
	err = s.updateIndex(ctx, func(ix *repoIndex) error {
		out, deleted = nil, false
		id, err := s.lookup(ix, ref)
		if err != nil {
			return err
		}
		rec := ix.Images[id]
		inUse := users[id]
		tags := ix.tagsOf(id)

		var untagTags, untagDigests []string
		byName := false
		if r, err := name.ParseReference(ref); err == nil {
			switch r := r.(type) {
			case name.Tag:
				if t := familiarTag(r); ix.Tags[t] == id {
					untagTags, byName = []string{t}, true
				}
			case name.Digest:
				if d := familiarDigest(r.Context(), r.DigestStr()); slices.Contains(rec.RepoDigests, d) {
					untagDigests, byName = []string{d}, true
				}
			}
		}
		if !byName {
			if len(tags) > 1 && !opts.Force {
				return fmt.Errorf("image %s is referenced by %d tags (%s); remove them by name or force: %w", shortID(id), len(tags), strings.Join(tags, ", "), engine.ErrConflict)
			}
			untagTags, untagDigests = tags, rec.RepoDigests
		}
		// The image goes when its last tag goes (its repo digests with it),
		// or when its last name of any kind goes.
		remainingTags := len(tags) - len(untagTags)
		remainingDigests := len(rec.RepoDigests) - len(untagDigests)
		goes := remainingTags == 0 && (len(untagTags) > 0 || remainingDigests == 0)
		if goes && len(inUse) > 0 && !opts.Force {
			return fmt.Errorf("image %s is used by container %s: %w", shortID(id), strings.Join(inUse, ", "), engine.ErrInUse)
		}
		for _, t := range untagTags {
			delete(ix.Tags, t)
			out = append(out, "Untagged: "+t)
		}
		rec.RepoDigests = slices.DeleteFunc(rec.RepoDigests, func(d string) bool { return slices.Contains(untagDigests, d) })
		for _, d := range untagDigests {
			out = append(out, "Untagged: "+d)
		}
		if !goes {
			return nil
		}
		for _, d := range rec.RepoDigests {
			out = append(out, "Untagged: "+d)
		}
		rec.RepoDigests = nil
		if len(inUse) > 0 {
			// Forced: the container keeps its image, nameless, until it is
			// removed and a prune runs.
			return nil
		}
		delete(ix.Images, id)
		out = append(out, "Deleted: "+id)
		deleted = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("remove %s: %w", ref, err)
	}
	if deleted {
		// Free the content now if no pull or prune is running; otherwise the
		// next prune will.
		if l, ok, err := state.TryAcquire(s.path("gc.lock")); err == nil && ok {
			// The removal itself is done; a failed clean-up is for the next
			// prune to report.
			if _, _, err := s.sweep(); err != nil {
				s.opts.log.Debug("clean-up after image removal failed", "err", err)
			}
			l.Release()
		}
	}
	return out, nil
}

// Prune deletes images that have no name left and no container using them,
// then every blob and snapshot no remaining image references, and whatever
// interrupted pulls left behind. It waits for running pulls to finish.
func (s *Store) Prune(ctx context.Context) (engine.PruneReport, error) {
	l, err := state.Acquire(ctx, s.path("gc.lock"))
	if err != nil {
		return engine.PruneReport{}, fmt.Errorf("prune: %w", err)
	}
	defer l.Release()
	users, err := s.users(ctx)
	if err != nil {
		return engine.PruneReport{}, fmt.Errorf("prune: %w", err)
	}
	var rep engine.PruneReport
	err = s.updateIndex(ctx, func(ix *repoIndex) error {
		rep.Deleted = nil
		for id, rec := range ix.Images {
			if len(ix.tagsOf(id)) == 0 && len(rec.RepoDigests) == 0 && len(users[id]) == 0 {
				delete(ix.Images, id)
				rep.Deleted = append(rep.Deleted, id)
			}
		}
		return nil
	})
	if err != nil {
		return engine.PruneReport{}, fmt.Errorf("prune: %w", err)
	}
	slices.Sort(rep.Deleted)
	removed, freed, err := s.sweep()
	rep.Deleted = append(rep.Deleted, removed...)
	rep.SpaceReclaimed = freed
	if err != nil {
		return rep, fmt.Errorf("prune: %w", err)
	}
	return rep, nil
}

// sweep deletes unreferenced blobs and snapshots and all leftovers of
// interrupted work. The caller holds gc.lock exclusively, so no pull is
// adding content.
func (s *Store) sweep() (removed []string, freed int64, err error) {
	ix, err := s.readIndex()
	if err != nil {
		return nil, 0, err
	}
	blobs := map[string]bool{}
	chains := map[string]bool{}
	for id, rec := range ix.Images {
		blobs[id] = true
		blobs[rec.Manifest] = true
		if rec.Index != "" {
			blobs[rec.Index] = true
		}
		_, mf, cfg, err := s.load(id, rec)
		if err != nil {
			// Keep everything we cannot account for rather than guess.
			return nil, 0, fmt.Errorf("sweep: %w", err)
		}
		for _, l := range mf.Layers {
			blobs[l.Digest.String()] = true
		}
		for _, c := range chainIDs(cfg.RootFS.DiffIDs) {
			chains[c.String()] = true
		}
	}
	var errs []error
	// Blobs.
	entries, err := os.ReadDir(s.path("blobs", "sha256"))
	if err != nil {
		return nil, 0, fmt.Errorf("sweep: %w", err)
	}
	for _, e := range entries {
		d := "sha256:" + e.Name()
		if blobs[d] {
			continue
		}
		p := s.path("blobs", "sha256", e.Name())
		size := diskUsage(p)
		if err := os.Remove(p); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, d)
		freed += size
	}
	// Snapshots.
	entries, err = os.ReadDir(s.path("snapshots"))
	if err != nil {
		return removed, freed, fmt.Errorf("sweep: %w", err)
	}
	for _, e := range entries {
		p := s.path("snapshots", e.Name())
		if e.Name() == "empty" {
			continue
		}
		if !strings.HasPrefix(e.Name(), ".tmp-") {
			var m snapshotMeta
			if err := state.ReadJSON(filepath.Join(p, "meta.json"), &m); err == nil && chains[m.ChainID] {
				continue
			} else if err == nil {
				removed = append(removed, "snapshot "+m.ChainID)
			}
		}
		size := diskUsage(p)
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
			continue
		}
		freed += size
	}
	// Interrupted downloads and imports.
	entries, err = os.ReadDir(s.path("ingest"))
	if err != nil {
		return removed, freed, fmt.Errorf("sweep: %w", err)
	}
	for _, e := range entries {
		p := s.path("ingest", e.Name())
		size := diskUsage(p)
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
			continue
		}
		freed += size
	}
	if err := errors.Join(errs...); err != nil {
		return removed, freed, fmt.Errorf("sweep: %w", err)
	}
	return removed, freed, nil
}

// diskUsage is the space a file or tree occupies (hard links counted once).
func diskUsage(p string) int64 {
	var total int64
	seen := map[uint64]bool{}
	filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if st.Nlink > 1 && !fi.IsDir() {
				if seen[st.Ino] {
					return nil
				}
				seen[st.Ino] = true
			}
			total += st.Blocks * 512
		}
		return nil
	})
	return total
}
