package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"

	"berth.dev/berth/engine"
)

// Import makes a single-layer image from a root filesystem tar stream
// (plain, gzip or zstd) and tags it ref. The layer is stored gzip-compressed
// and unpacked into its snapshot in the same pass. opts.Changes are applied
// to the config (see ApplyChanges); the platform is the host's unless
// opts.Platform says otherwise. The image has no Digest until it is pushed.
func (s *Store) Import(ctx context.Context, rootfs io.Reader, ref string, opts engine.ImportOptions) (engine.Image, error) {
	t, err := s.parseTagRef(ref)
	if err != nil {
		return engine.Image{}, fmt.Errorf("import: %w", err)
	}
	var config v1.Config
	if err := ApplyChanges(&config, opts.Changes); err != nil {
		return engine.Image{}, fmt.Errorf("import: %w", err)
	}
	platform := HostPlatform()
	if opts.Platform != nil {
		platform = *opts.Platform
	}

	gc, err := s.lockContent(ctx)
	if err != nil {
		return engine.Image{}, fmt.Errorf("import: %w", err)
	}
	defer gc.Release()
	p := &puller{s: s}
	defer p.discard()

	src, closeSrc, err := decompress(rootfs)
	if err != nil {
		return engine.Image{}, fmt.Errorf("import: %w", err)
	}
	defer closeSrc()
	blob, err := s.newIngest()
	if err != nil {
		return engine.Image{}, fmt.Errorf("import: %w", err)
	}
	p.addBlob(blob)
	gz, err := gzip.NewWriterLevel(blob, gzip.DefaultCompression)
	if err != nil {
		return engine.Image{}, fmt.Errorf("import: %w", err)
	}
	snap, diffID, size, err := s.unpackPending(ctx, io.TeeReader(src, gz), s.opts.maxLayerSize)
	if err != nil {
		return engine.Image{}, fmt.Errorf("import: %w", err)
	}
	p.addSnapshot(snap)
	if err := gz.Close(); err != nil {
		return engine.Image{}, fmt.Errorf("import: compress: %w", err)
	}
	if err := snap.finish(diffID, diffID, v1.Hash{}, size, false); err != nil {
		return engine.Image{}, fmt.Errorf("import: %w", err)
	}

	now := time.Now().UTC()
	cfg := v1.ConfigFile{
		Architecture: platform.Architecture,
		OS:           platform.OS,
		Variant:      platform.Variant,
		Created:      v1.Time{Time: now},
		Config:       config,
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}},
		History:      []v1.History{{Created: v1.Time{Time: now}, CreatedBy: "berth image import", Comment: "imported from a root filesystem"}},
	}
	cfgData, err := json.Marshal(cfg)
	if err != nil {
		return engine.Image{}, fmt.Errorf("import: %w", err)
	}
	cfgDigest, err := p.stageData(cfgData)
	if err != nil {
		return engine.Image{}, fmt.Errorf("import: %w", err)
	}
	mf := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(cfgData)), Digest: cfgDigest},
		Layers:        []v1.Descriptor{{MediaType: types.OCILayer, Size: blob.n, Digest: blob.digest()}},
	}
	mfData, err := json.Marshal(mf)
	if err != nil {
		return engine.Image{}, fmt.Errorf("import: %w", err)
	}
	mfDigest, err := p.stageData(mfData)
	if err != nil {
		return engine.Image{}, fmt.Errorf("import: %w", err)
	}
	if _, ok := s.blobSize(blob.digest()); ok {
		// The same compressed layer is already stored.
		blob.discard()
	}
	if err := p.commit(); err != nil {
		return engine.Image{}, fmt.Errorf("import: %w", err)
	}
	id := cfgDigest.String()
	err = s.updateIndex(ctx, func(ix *repoIndex) error {
		ix.addImage(id, imageRecord{Manifest: mfDigest.String(), MediaType: string(types.OCIManifestSchema1), Platform: platform})
		ix.Tags[familiarTag(t)] = id
		return nil
	})
	if err != nil {
		return engine.Image{}, fmt.Errorf("import: %w", err)
	}
	return s.Inspect(ctx, id)
}

// stageData stages a small blob whose digest is computed here.
func (p *puller) stageData(data []byte) (v1.Hash, error) {
	w, err := p.s.newIngest()
	if err != nil {
		return v1.Hash{}, err
	}
	if _, err := w.Write(data); err != nil {
		w.discard()
		return v1.Hash{}, fmt.Errorf("ingest: %w", err)
	}
	d := w.digest()
	if size, ok := p.s.blobSize(d); ok && size == int64(len(data)) {
		w.discard()
		return d, nil
	}
	p.addBlob(w)
	return d, nil
}

// DirTar streams the directory dir as a tar archive of a root filesystem:
// entries relative to dir, sorted, with modes, ownership, times, symbolic
// links, hard links (by inode), FIFOs and device nodes as they are. It is
// how `berth image import DIR` feeds Import.
func DirTar(ctx context.Context, dir string) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeDirTar(ctx, dir, pw))
	}()
	return pr
}

func writeDirTar(ctx context.Context, dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSocket != 0 {
			return nil
		}
		target := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, target)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if rel == "." {
			hdr.Name = "./"
		}
		hdr.Uname, hdr.Gname = "", ""
		// As Docker writes layers: modification times to the second, no
		// access or change times. Importing the same tree twice gives the
		// same layer, and a plain entry needs no PAX record, which halves
		// the headers every pull of the image parses.
		hdr.ModTime = hdr.ModTime.Truncate(time.Second)
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		hdr.Format = tar.FormatPAX
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if first, ok := links[key]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				links[key] = hdr.Name
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.CopyN(tw, f, hdr.Size)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tar %s: %w", dir, err)
	}
	return tw.Close()
}
