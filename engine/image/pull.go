package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/state"
)

// HostPlatform is the platform images are pulled for by default.
func HostPlatform() engine.Platform {
	p := engine.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	if p.Architecture == "arm" {
		p.Variant = "v7"
	}
	return p
}

// ParsePlatform parses os/arch[/variant] as --platform takes it.
func ParsePlatform(s string) (engine.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return engine.Platform{}, fmt.Errorf("platform %q: want os/arch[/variant]: %w", s, engine.ErrInvalid)
	}
	return engine.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}, nil
}

// Pull fetches ref into the store: the manifest a tag names is pinned by its
// digest, the platform is chosen from an index, layers already present are
// not fetched again and missing ones are fetched and unpacked in parallel.
func (s *Store) Pull(ctx context.Context, ref string, opts engine.PullOptions) (engine.Image, error) {
	r, err := s.parseRef(ref)
	if err != nil {
		return engine.Image{}, fmt.Errorf("pull: %w", err)
	}
	want, explicit := HostPlatform(), false
	if opts.Platform != nil {
		want, explicit = *opts.Platform, true
	}
	progress := serializeProgress(opts.Progress)

	// Content addressing makes a pull by digest of content that is already
	// complete a no-op: no registry needed.
	if d, ok := r.(name.Digest); ok {
		if img, ok := s.presentByDigest(ctx, d, want, explicit); ok {
			return img, nil
		}
	}

	start := time.Now()
	phase := func(name string) { s.opts.log.Debug("pull", "ref", ref, "phase", name, "elapsed", time.Since(start)) }
	gc, err := s.lockContent(ctx)
	if err != nil {
		return engine.Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	defer gc.Release()

	repo := r.Context()
	sess, err := s.newSession(ctx, repo.Registry, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return engine.Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	phase("connected")
	p := &puller{s: s, sess: sess, repo: repo, progress: progress, reportProgress: opts.Progress != nil}
	defer p.discard()

	top, err := remote.Get(r, sess.remoteOptions(ctx)...)
	if err != nil {
		return engine.Image{}, fmt.Errorf("pull %s: %w", ref, classify(err))
	}
	pinned := top.Digest.String()
	mfData, mfDigest, mfType := top.Manifest, top.Digest, string(top.MediaType)
	var indexDigest v1.Hash
	platform := want
	for depth := 0; ; depth++ {
		kind, err := manifestKind(mfData, mfType)
		if err != nil {
			return engine.Image{}, fmt.Errorf("pull %s: %w", ref, err)
		}
		if kind == "image" {
			break
		}
		if depth == 4 {
			return engine.Image{}, fmt.Errorf("pull %s: indexes nested too deep: %w", ref, engine.ErrUnsupported)
		}
		if err := p.stage(mfData, mfDigest); err != nil {
			return engine.Image{}, fmt.Errorf("pull %s: %w", ref, err)
		}
		if depth == 0 {
			indexDigest = mfDigest
		}
		child, err := choosePlatform(mfData, want)
		if err != nil {
			return engine.Image{}, fmt.Errorf("pull %s: %w", ref, err)
		}
		if child.Platform != nil {
			platform = engine.Platform{OS: child.Platform.OS, Architecture: child.Platform.Architecture, Variant: child.Platform.Variant}
		}
		desc, err := remote.Get(repo.Digest(child.Digest.String()), sess.remoteOptions(ctx)...)
		if err != nil {
			return engine.Image{}, fmt.Errorf("pull %s: manifest for %s: %w", ref, platform, classify(err))
		}
		mfData, mfDigest, mfType = desc.Manifest, desc.Digest, string(child.MediaType)
	}
	if err := checkDigest(mfDigest); err != nil {
		return engine.Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	mf, err := v1.ParseManifest(bytes.NewReader(mfData))
	if err != nil {
		return engine.Image{}, fmt.Errorf("pull %s: manifest: %w: %w", ref, err, engine.ErrInvalid)
	}
	if mf.MediaType != "" {
		mfType = string(mf.MediaType)
	}
	if mfType == "" {
		mfType = string(types.OCIManifestSchema1)
	}
	if !mf.Config.MediaType.IsConfig() && mf.Config.MediaType != "" {
		return engine.Image{}, fmt.Errorf("pull %s: config media type %s: not a container image: %w", ref, mf.Config.MediaType, engine.ErrUnsupported)
	}
	if err := p.stage(mfData, mfDigest); err != nil {
		return engine.Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}

	p.prefetch(ctx, mf.Layers)
	cfgData, err := p.config(ctx, mf.Config)
	if err != nil {
		return engine.Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	phase("manifest and config")
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgData))
	if err != nil {
		return engine.Image{}, fmt.Errorf("pull %s: config: %w: %w", ref, err, engine.ErrInvalid)
	}
	if len(cfg.RootFS.DiffIDs) != len(mf.Layers) {
		return engine.Image{}, fmt.Errorf("pull %s: manifest has %d layers, config %d diff IDs: %w", ref, len(mf.Layers), len(cfg.RootFS.DiffIDs), engine.ErrInvalid)
	}
	if indexDigest == (v1.Hash{}) {
		platform = engine.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
		if explicit && !platformMatches(want, &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}) {
			return engine.Image{}, fmt.Errorf("pull %s: image is %s, not %s: %w", ref, platform, want, engine.ErrNotFound)
		}
	}

	if err := p.layers(ctx, mf.Layers, cfg.RootFS.DiffIDs); err != nil {
		return engine.Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	phase("layers")
	if err := p.commit(); err != nil {
		return engine.Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	phase("committed")

	id := mf.Config.Digest.String()
	rec := imageRecord{
		Manifest:    mfDigest.String(),
		MediaType:   mfType,
		Digest:      pinned,
		RepoDigests: []string{familiarDigest(repo, pinned)},
		Platform:    platform,
	}
	if indexDigest != (v1.Hash{}) {
		rec.Index = indexDigest.String()
	}
	var recorded *repoIndex
	err = s.updateIndex(ctx, func(ix *repoIndex) error {
		ix.addImage(id, rec)
		if t, ok := r.(name.Tag); ok {
			ix.Tags[familiarTag(t)] = id
		}
		recorded = ix
		return nil
	})
	if err != nil {
		return engine.Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	phase("recorded")
	return s.describe(recorded, id)
}

// presentByDigest returns the image d names if it is complete locally (and
// of the platform asked for, when an index was involved or one was asked
// for explicitly).
func (s *Store) presentByDigest(ctx context.Context, d name.Digest, want engine.Platform, explicit bool) (engine.Image, bool) {
	ix, err := s.readIndex()
	if err != nil {
		return engine.Image{}, false
	}
	id, err := s.lookup(ix, d.String())
	if err != nil {
		return engine.Image{}, false
	}
	rec := ix.Images[id]
	if (rec.Index != "" || explicit) && !platformMatches(want, &v1.Platform{OS: rec.Platform.OS, Architecture: rec.Platform.Architecture, Variant: rec.Platform.Variant}) {
		return engine.Image{}, false
	}
	_, mf, cfg, err := s.load(id, rec)
	if err != nil {
		return engine.Image{}, false
	}
	for _, l := range mf.Layers {
		if _, ok := s.blobSize(l.Digest); !ok {
			return engine.Image{}, false
		}
	}
	for _, c := range chainIDs(cfg.RootFS.DiffIDs) {
		if _, ok, err := s.findSnapshot(c); err != nil || !ok {
			return engine.Image{}, false
		}
	}
	img, err := s.Inspect(ctx, id)
	return img, err == nil
}

// choosePlatform picks the manifest for want out of an index.
func choosePlatform(data []byte, want engine.Platform) (v1.Descriptor, error) {
	var ix v1.IndexManifest
	if err := json.Unmarshal(data, &ix); err != nil {
		return v1.Descriptor{}, fmt.Errorf("index: %w: %w", err, engine.ErrInvalid)
	}
	var best *v1.Descriptor
	for i := range ix.Manifests {
		d := &ix.Manifests[i]
		if !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
			continue
		}
		if !platformMatches(want, d.Platform) {
			continue
		}
		if best == nil || (want.Variant != "" && d.Platform.Variant == want.Variant && best.Platform.Variant != want.Variant) {
			best = d
		}
	}
	if best == nil {
		return v1.Descriptor{}, fmt.Errorf("no manifest for platform %s in the index: %w", want, engine.ErrNotFound)
	}
	return *best, nil
}

// platformMatches reports whether p serves want. An unset variant in want
// matches any variant; arm64's "v8" is its default.
func platformMatches(want engine.Platform, p *v1.Platform) bool {
	if p == nil || p.OS != want.OS || p.Architecture != want.Architecture {
		return false
	}
	if want.Variant == "" {
		return true
	}
	norm := func(arch, v string) string {
		if arch == "arm64" && v == "" {
			return "v8"
		}
		if arch == "arm" && v == "" {
			return "v7"
		}
		return v
	}
	return norm(p.Architecture, p.Variant) == norm(want.Architecture, want.Variant)
}

// serializeProgress makes a progress callback safe to call from several
// goroutines.
func serializeProgress(fn func(engine.PullProgress)) func(engine.PullProgress) {
	if fn == nil {
		return func(engine.PullProgress) {}
	}
	var mu sync.Mutex
	return func(p engine.PullProgress) {
		mu.Lock()
		defer mu.Unlock()
		fn(p)
	}
}

// puller holds the state of one pull: what it staged, to be committed
// together after one filesystem sync, or discarded.
type puller struct {
	s        *Store
	sess     *session
	repo     name.Repository
	progress func(engine.PullProgress)
	// reportProgress is set when someone listens to progress.
	reportProgress bool

	mu        sync.Mutex
	blobs     []*ingest
	snapshots []*pendingSnapshot
	fetches   map[v1.Hash]*fetch
}

// fetch is a layer download started early.
type fetch struct {
	done chan struct{}
	resp *http.Response
	err  error
}

// prefetch starts the downloads of missing layers, as many as may run at
// once, while the image config is fetched: the config names the snapshots
// and the digests unpacked layers must have, which matter only once a
// layer is unpacked, so its first bytes need not wait for a round trip.
func (p *puller) prefetch(ctx context.Context, layers []v1.Descriptor) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range layers {
		if len(p.fetches) == p.s.opts.jobs {
			return
		}
		if checkDigest(l.Digest) != nil || p.fetches[l.Digest] != nil {
			continue
		}
		if _, ok := p.s.blobSize(l.Digest); ok {
			continue
		}
		if p.fetches == nil {
			p.fetches = map[v1.Hash]*fetch{}
		}
		f := &fetch{done: make(chan struct{})}
		p.fetches[l.Digest] = f
		go func() {
			defer close(f.done)
			f.resp, f.err = p.sess.getBlob(ctx, p.repo, l.Digest)
		}()
	}
}

// getBlob returns the download of the blob d: the one prefetch started, or
// a new one.
func (p *puller) getBlob(ctx context.Context, d v1.Hash) (*http.Response, error) {
	p.mu.Lock()
	f := p.fetches[d]
	delete(p.fetches, d)
	p.mu.Unlock()
	if f == nil {
		return p.sess.getBlob(ctx, p.repo, d)
	}
	select {
	case <-f.done:
		return f.resp, f.err
	case <-ctx.Done():
		closeFetch(f)
		return nil, context.Cause(ctx)
	}
}

// closeFetch releases a download that will not be read, once it has
// started.
func closeFetch(f *fetch) {
	go func() {
		<-f.done
		if f.resp != nil {
			f.resp.Body.Close()
		}
	}()
}

func (p *puller) addBlob(w *ingest) {
	p.mu.Lock()
	p.blobs = append(p.blobs, w)
	p.mu.Unlock()
}

func (p *puller) addSnapshot(ps *pendingSnapshot) {
	p.mu.Lock()
	p.snapshots = append(p.snapshots, ps)
	p.mu.Unlock()
}

// stage writes a small blob (manifest, index) for the commit.
func (p *puller) stage(data []byte, d v1.Hash) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	if size, ok := p.s.blobSize(d); ok && size == int64(len(data)) {
		return nil
	}
	w, err := p.s.newIngest()
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.discard()
		return fmt.Errorf("ingest: %w", err)
	}
	if err := w.verify(d, int64(len(data))); err != nil {
		w.discard()
		return err
	}
	w.syncInBackground()
	p.addBlob(w)
	return nil
}

// config returns the image config, from the store or the registry.
func (p *puller) config(ctx context.Context, desc v1.Descriptor) ([]byte, error) {
	if err := checkDigest(desc.Digest); err != nil {
		return nil, err
	}
	if data, err := p.s.readBlob(desc.Digest, desc.Size); err == nil {
		return data, nil
	}
	if desc.Size > maxSmallBlob {
		return nil, fmt.Errorf("config %s: %d bytes is too large: %w", desc.Digest, desc.Size, engine.ErrInvalid)
	}
	resp, err := p.sess.getBlob(ctx, p.repo, desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, desc.Size+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", desc.Digest, err)
	}
	if err := p.stage(data, desc.Digest); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return data, nil
}

// layers fetches and unpacks what is missing, in parallel. A layer whose
// blob appears twice in the image is fetched once.
func (p *puller) layers(ctx context.Context, layers []v1.Descriptor, diffIDs []v1.Hash) error {
	chains := chainIDs(diffIDs)
	type job struct {
		i                  int
		needBlob, needSnap bool
	}
	var first, later []job
	seen := map[v1.Hash]bool{}
	for i, l := range layers {
		if err := checkDigest(l.Digest); err != nil {
			return err
		}
		if err := checkDigest(diffIDs[i]); err != nil {
			return err
		}
		_, haveBlob := p.s.blobSize(l.Digest)
		_, haveSnap, err := p.s.findSnapshot(chains[i])
		if err != nil {
			return err
		}
		j := job{i: i, needBlob: !haveBlob && !seen[l.Digest], needSnap: !haveSnap}
		if !haveBlob && seen[l.Digest] {
			later = append(later, j) // unpacks from the copy the first job fetches
		} else {
			first = append(first, j)
		}
		seen[l.Digest] = true
	}
	fetched := map[v1.Hash]string{} // digest -> staged file
	var fmu sync.Mutex
	run := func(jobs []job) error {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(p.s.opts.jobs)
		for _, j := range jobs {
			l := layers[j.i]
			g.Go(func() error {
				src := ""
				fmu.Lock()
				src = fetched[l.Digest]
				fmu.Unlock()
				staged, err := p.layer(gctx, l, diffIDs[j.i], chains[j.i], parentOf(chains, j.i), j.needBlob, j.needSnap, src)
				if err != nil {
					return fmt.Errorf("layer %s: %w", l.Digest, err)
				}
				if staged != "" {
					fmu.Lock()
					fetched[l.Digest] = staged
					fmu.Unlock()
				}
				return nil
			})
		}
		return g.Wait()
	}
	if err := run(first); err != nil {
		return err
	}
	return run(later)
}

// layer brings one layer in: download and unpack in one pass when both are
// missing, only one of them when the other is present. It returns the path
// of the staged blob it downloaded, if any.
func (p *puller) layer(ctx context.Context, l v1.Descriptor, diffID, chainID, parent v1.Hash, needBlob, needSnap bool, src string) (string, error) {
	ev := engine.PullProgress{Digest: l.Digest.String(), Total: l.Size}
	if !needBlob && !needSnap {
		ev.Status, ev.Complete = "exists", l.Size
		p.progress(ev)
		return "", nil
	}
	if !needBlob {
		path := src
		if path == "" {
			path = p.s.blobPath(l.Digest)
		}
		f, err := os.Open(path)
		if err != nil {
			return "", err
		}
		defer f.Close()
		ev.Status = "extracting"
		p.progress(ev)
		ps, err := p.s.buildSnapshot(ctx, f, l.Size, diffID, chainID, parent, false)
		if err != nil {
			return "", err
		}
		p.addSnapshot(ps)
		ev.Status, ev.Complete = "done", l.Size
		p.progress(ev)
		return "", nil
	}
	if !l.MediaType.IsDistributable() {
		p.s.opts.log.Debug("fetching a non-distributable layer from the registry", "digest", l.Digest.String())
	}
	resp, err := p.getBlob(ctx, l.Digest)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	w, err := p.s.newIngest()
	if err != nil {
		return "", err
	}
	ok := false
	defer func() {
		if !ok {
			w.discard()
		}
	}()
	ev.Status = "downloading"
	p.progress(ev)
	var body io.Reader = io.LimitReader(resp.Body, l.Size+1)
	if p.reportProgress {
		body = &progressReader{r: body, ev: ev, fn: p.progress}
	}
	if !needSnap {
		buf := getBuffer()
		_, err := io.CopyBuffer(w, body, buf)
		putBuffer(buf)
		if err != nil {
			return "", err
		}
		w.syncInBackground()
	} else {
		// Download (hash, write the blob) and unpack run in two
		// goroutines with a few chunks between them, so that the
		// decompressor never waits on the network. The blob is flushed to
		// disk as soon as it is complete, while the unpacker finishes.
		pipe := newChunkPipe(3)
		dl := make(chan error, 1)
		go func() {
			err := fill(pipe, io.TeeReader(body, w))
			if err == nil {
				w.syncInBackground()
			}
			dl <- err
		}()
		ps, err := p.s.buildSnapshot(ctx, pipe, l.Size, diffID, chainID, parent, false)
		if err == nil {
			// What the decompressor left (it stops at the end of its
			// stream) still belongs to the blob.
			_, err = io.Copy(io.Discard, pipe)
		}
		pipe.closeRead()
		if derr := <-dl; err == nil {
			err = derr
		}
		pipe.release()
		if err == nil {
			err = w.sync()
		}
		if err != nil {
			if ps != nil {
				ps.discard()
			}
			return "", err
		}
		p.addSnapshot(ps)
	}
	if err := w.verify(l.Digest, l.Size); err != nil {
		return "", err
	}
	ok = true
	p.addBlob(w)
	ev.Status, ev.Complete = "done", l.Size
	p.progress(ev)
	return w.f.Name(), nil
}

// commit moves the staged content into place: blobs, the store's source of
// truth, only once they are on disk (their writeback started while they
// were written, so this mostly waits for the tail); snapshots straight away,
// as derived data that Rootfs syncs before a container uses it (see
// snapshotMeta).
func (p *puller) commit() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.blobs {
		if err := w.sync(); err != nil {
			return err
		}
	}
	for _, w := range p.blobs {
		if err := w.commit(); err != nil {
			return err
		}
	}
	if len(p.blobs) > 0 {
		if err := state.SyncDir(p.s.path("blobs", "sha256")); err != nil {
			return err
		}
	}
	for _, ps := range p.snapshots {
		if err := ps.commit(); err != nil {
			return err
		}
	}
	return nil
}

// discard drops whatever was not committed.
func (p *puller) discard() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for d, f := range p.fetches {
		closeFetch(f)
		delete(p.fetches, d)
	}
	for _, w := range p.blobs {
		w.discard()
	}
	for _, ps := range p.snapshots {
		ps.discard()
	}
}

// getBlob starts the download of a blob of repo.
func (ss *session) getBlob(ctx context.Context, repo name.Repository, d v1.Hash) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ss.url("/v2/"+repo.RepositoryStr()+"/blobs/"+d.String()), nil)
	if err != nil {
		return nil, err
	}
	resp, err := ss.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, fmt.Errorf("blob %s: %w", d, httpError(resp, http.StatusOK))
	}
	return resp, nil
}

// progressReader reports download progress at most every 100 ms.
type progressReader struct {
	r    io.Reader
	ev   engine.PullProgress
	fn   func(engine.PullProgress)
	last time.Time
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.ev.Complete += int64(n)
	if now := time.Now(); now.Sub(r.last) >= 100*time.Millisecond {
		r.last = now
		r.fn(r.ev)
	}
	return n, err
}
