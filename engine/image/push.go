package image

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/errgroup"

	"berth.dev/berth/engine"
)

// Push sends the image ref names (name:tag, or name@digest for a push by
// digest) to its registry. Blobs the registry has are skipped; blobs it may
// have in another repository (one this store pulled the blob from or pushed
// it to) are mounted rather than uploaded. The manifest is sent byte for
// byte as stored, so its digest is the one the image already had.
func (s *Store) Push(ctx context.Context, ref string, opts engine.PushOptions) error {
	r, err := s.parseRef(ref)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	progress := serializeProgress(opts.Progress)
	ix, err := s.readIndex()
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	id, err := s.lookup(ix, ref)
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	rec := ix.Images[id]
	mfData, mf, _, err := s.load(id, rec)
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	repo := r.Context()
	sources := s.mountSources(ix, repo)
	scopes := []string{repo.Scope(transport.PushScope)}
	for _, src := range sources {
		for _, sr := range src {
			if !slices.Contains(scopes, sr.Scope(transport.PullScope)) {
				scopes = append(scopes, sr.Scope(transport.PullScope))
			}
		}
	}
	sess, err := s.newSession(ctx, repo.Registry, scopes)
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}

	blobs := append([]v1.Descriptor{mf.Config}, mf.Layers...)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.jobs)
	seen := map[v1.Hash]bool{}
	for _, b := range blobs {
		if seen[b.Digest] {
			continue
		}
		seen[b.Digest] = true
		g.Go(func() error {
			if err := s.pushBlob(gctx, sess, repo, b, sources[b.Digest], progress); err != nil {
				return fmt.Errorf("blob %s: %w", b.Digest, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}

	mfDigest := rec.Manifest
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, sess.url("/v2/"+repo.RepositoryStr()+"/manifests/"+r.Identifier()), bytes.NewReader(mfData))
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	req.Header.Set("Content-Type", rec.MediaType)
	resp, err := sess.client.Do(req)
	if err != nil {
		return fmt.Errorf("push %s: manifest: %w", ref, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("push %s: manifest: %w", ref, httpError(resp, http.StatusCreated))
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != mfDigest {
		return fmt.Errorf("push %s: registry stored the manifest as %s, expected %s", ref, got, mfDigest)
	}
	err = s.updateIndex(ctx, func(ix *repoIndex) error {
		rec := ix.Images[id]
		if rec == nil {
			return nil // removed meanwhile; the registry has it all the same
		}
		rec.Digest = mfDigest
		rec.RepoDigests = append(rec.RepoDigests, familiarDigest(repo, mfDigest))
		return nil
	})
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

// mountSources maps blob digests to repositories of the same registry that
// are known to hold them: the repositories of repo digests (pulled from or
// pushed to) of images that contain the blob.
func (s *Store) mountSources(ix *repoIndex, target name.Repository) map[v1.Hash][]name.Repository {
	out := map[v1.Hash][]name.Repository{}
	for id, rec := range ix.Images {
		var repos []name.Repository
		for _, rd := range rec.RepoDigests {
			d, err := name.NewDigest(rd)
			if err != nil {
				continue
			}
			if d.Context().RegistryStr() != target.RegistryStr() || d.Context().RepositoryStr() == target.RepositoryStr() {
				continue
			}
			repos = append(repos, d.Context())
		}
		if len(repos) == 0 {
			continue
		}
		_, mf, _, err := s.load(id, rec)
		if err != nil {
			continue
		}
		for _, b := range append([]v1.Descriptor{mf.Config}, mf.Layers...) {
			for _, r := range repos {
				if !slices.ContainsFunc(out[b.Digest], func(x name.Repository) bool { return x.String() == r.String() }) {
					out[b.Digest] = append(out[b.Digest], r)
				}
			}
		}
	}
	return out
}

// pushBlob makes sure repo has blob b: it may already, it may be mounted
// from a source repository, or it is uploaded in one monolithic PUT
// streamed from the store.
func (s *Store) pushBlob(ctx context.Context, sess *session, repo name.Repository, b v1.Descriptor, sources []name.Repository, progress func(engine.PullProgress)) error {
	ev := engine.PullProgress{Digest: b.Digest.String(), Total: b.Size}
	base := "/v2/" + repo.RepositoryStr() + "/blobs/"
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, sess.url(base+b.Digest.String()), nil)
	if err != nil {
		return err
	}
	resp, err := sess.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		ev.Status, ev.Complete = "exists", b.Size
		progress(ev)
		return nil
	}

	location := ""
	if len(sources) > 3 {
		sources = sources[:3]
	}
	for _, src := range append(slices.Clone(sources), name.Repository{}) {
		q := url.Values{}
		if src.RepositoryStr() != "" {
			q.Set("mount", b.Digest.String())
			q.Set("from", src.RepositoryStr())
		}
		u := sess.url(base + "uploads/")
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
		if err != nil {
			return err
		}
		resp, err := sess.client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusCreated:
			ev.Status, ev.Complete = "mounted", b.Size
			progress(ev)
			return nil
		case http.StatusAccepted:
			loc, err := resp.Location()
			if err != nil {
				return fmt.Errorf("upload: no location: %w", err)
			}
			location = loc.String()
		default:
			if src.RepositoryStr() != "" {
				continue // try the next source, then a plain upload
			}
			return fmt.Errorf("start upload: %w", httpError(resp, http.StatusAccepted))
		}
		if location != "" {
			break
		}
	}

	f, err := os.Open(s.blobPath(b.Digest))
	if err != nil {
		return fmt.Errorf("blob missing from the store: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() != b.Size {
		return fmt.Errorf("stored blob has the wrong size: store damaged")
	}
	u, err := url.Parse(location)
	if err != nil {
		return fmt.Errorf("upload location %q: %w", location, err)
	}
	q := u.Query()
	q.Set("digest", b.Digest.String())
	u.RawQuery = q.Encode()
	ev.Status = "pushing"
	progress(ev)
	body := &progressReader{r: f, ev: ev, fn: progress}
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, u.String(), io.NopCloser(body))
	if err != nil {
		return err
	}
	req.ContentLength = b.Size
	req.Header.Set("Content-Type", "application/octet-stream")
	req.GetBody = nil
	resp, err = sess.client.Do(req)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("upload: %w", httpError(resp, http.StatusCreated))
	}
	ev.Status, ev.Complete = "done", b.Size
	progress(ev)
	return nil
}

// Resolve returns the digest ref names in its registry now, from a HEAD
// request (a GET where a registry does not answer HEAD): for a tag of a
// multi-platform image that is the index's digest, which is what Pull
// records as the image's Digest and repo digest. When platform is set and
// ref names an index, the index is fetched too and must hold a manifest
// for the platform (engine.ErrNotFound if not).
func (s *Store) Resolve(ctx context.Context, ref string, platform *engine.Platform) (string, error) {
	r, err := s.parseRef(ref)
	if err != nil {
		return "", fmt.Errorf("resolve: %w", err)
	}
	repo := r.Context()
	sess, err := s.newSession(ctx, repo.Registry, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", ref, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, sess.url("/v2/"+repo.RepositoryStr()+"/manifests/"+r.Identifier()), nil)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", ref, err)
	}
	req.Header.Set("Accept", strings.Join(acceptManifests, ","))
	resp, err := sess.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", ref, err)
	}
	resp.Body.Close()
	digest := resp.Header.Get("Docker-Content-Digest")
	mediaType := resp.Header.Get("Content-Type")
	var body []byte
	if resp.StatusCode == http.StatusOK && digest != "" && (platform == nil || !isIndexType(mediaType)) {
		if d, ok := r.(name.Digest); ok && d.DigestStr() != digest {
			return "", fmt.Errorf("resolve %s: registry answered with digest %s", ref, digest)
		}
		return digest, nil
	}
	if resp.StatusCode == http.StatusNotFound {
		return "", fmt.Errorf("resolve %s: %w", ref, httpError(resp, http.StatusOK))
	}
	// No usable HEAD answer, or an index to look into: GET it.
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, req.URL.String(), nil)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", ref, err)
	}
	req.Header.Set("Accept", strings.Join(acceptManifests, ","))
	resp, err = sess.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", ref, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("resolve %s: %w", ref, httpError(resp, http.StatusOK))
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxSmallBlob))
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", ref, err)
	}
	d, err := writeHash(body)
	if err != nil {
		return "", err
	}
	if rd, ok := r.(name.Digest); ok && rd.DigestStr() != d.String() {
		return "", fmt.Errorf("resolve %s: registry sent content with digest %s", ref, d)
	}
	if platform != nil {
		kind, err := manifestKind(body, resp.Header.Get("Content-Type"))
		if err != nil {
			return "", fmt.Errorf("resolve %s: %w", ref, err)
		}
		if kind == "index" {
			if _, err := choosePlatform(body, *platform); err != nil {
				return "", fmt.Errorf("resolve %s: %w", ref, err)
			}
		}
	}
	return d.String(), nil
}

var acceptManifests = []string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}

func isIndexType(mt string) bool {
	return mt == "application/vnd.oci.image.index.v1+json" || mt == "application/vnd.docker.distribution.manifest.list.v2+json"
}

func writeHash(data []byte) (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(data))
	return h, err
}
