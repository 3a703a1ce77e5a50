package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/state"
)

// parseRef parses a user's image reference ("busybox", "busybox:1.36",
// "127.0.0.1:5000/app@sha256:...") the way Docker does: no registry means
// Docker Hub, no tag means latest. Registries listed as insecure get ggcr's
// Insecure option so that the plain-HTTP fallback may be tried.
func (s *Store) parseRef(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("reference %q: %w: %w", ref, err, engine.ErrInvalid)
	}
	if s.insecureHost(r.Context().RegistryStr()) {
		r, err = name.ParseReference(ref, name.Insecure)
		if err != nil {
			return nil, fmt.Errorf("reference %q: %w: %w", ref, err, engine.ErrInvalid)
		}
	}
	return r, nil
}

// parseTagRef parses a reference that must be name[:tag] (tagging, import).
func (s *Store) parseTagRef(ref string) (name.Tag, error) {
	r, err := s.parseRef(ref)
	if err != nil {
		return name.Tag{}, err
	}
	t, ok := r.(name.Tag)
	if !ok {
		return name.Tag{}, fmt.Errorf("reference %q: a tag is needed here, not a digest: %w", ref, engine.ErrInvalid)
	}
	return t, nil
}

// insecureHost reports whether plain HTTP is allowed to host (host or
// host:port): loopback always, others when listed.
func (s *Store) insecureHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	if ip != nil && ip.IsLoopback() {
		return true
	}
	for _, in := range s.opts.insecure {
		in = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(in, "http://"), "https://"), "/")
		if in == hostport || in == host {
			return true
		}
		if _, cidr, err := net.ParseCIDR(in); err == nil && ip != nil && cidr.Contains(ip) {
			return true
		}
	}
	return false
}

// familiarRepo is the short form people type and Docker prints: Docker
// Hub's registry and its "library/" namespace are left out.
func familiarRepo(r name.Repository) string {
	repo := r.RepositoryStr()
	if r.RegistryStr() == name.DefaultRegistry {
		if rest, ok := strings.CutPrefix(repo, "library/"); ok && !strings.Contains(rest, "/") {
			return rest
		}
		return repo
	}
	return r.RegistryStr() + "/" + repo
}

func familiarTag(t name.Tag) string { return familiarRepo(t.Context()) + ":" + t.TagStr() }

func familiarDigest(r name.Repository, digest string) string { return familiarRepo(r) + "@" + digest }

// repoIndex is the reference index, repositories.json.
type repoIndex struct {
	Version int `json:"version"`
	// Tags maps a familiar "repository:tag" to the image ID it names.
	Tags map[string]string `json:"tags"`
	// Images holds every image by ID (its config digest).
	Images map[string]*imageRecord `json:"images"`
}

// imageRecord is what the index keeps of one image.
type imageRecord struct {
	// Manifest is the digest of the image manifest in blobs/.
	Manifest string `json:"manifest"`
	// MediaType is the manifest's media type.
	MediaType string `json:"mediaType"`
	// Index is the digest of the index the manifest was chosen from, kept
	// in blobs/ so that name@index-digest resolves locally.
	Index string `json:"index,omitempty"`
	// Digest is the digest the image was last pulled or pushed as: what the
	// registry's tag named (an index or a manifest).
	Digest string `json:"digest,omitempty"`
	// RepoDigests are familiar "repository@digest" references.
	RepoDigests []string        `json:"repoDigests,omitempty"`
	Platform    engine.Platform `json:"platform"`
	Added       time.Time       `json:"added"`
}

const indexFile = "repositories.json"

// readIndex reads the reference index. Readers need no lock: the file is only
// ever replaced whole.
func (s *Store) readIndex() (*repoIndex, error) {
	ix := &repoIndex{}
	err := state.ReadJSON(s.path(indexFile), ix)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("image index: %w", err)
	}
	if ix.Tags == nil {
		ix.Tags = map[string]string{}
	}
	if ix.Images == nil {
		ix.Images = map[string]*imageRecord{}
	}
	return ix, nil
}

// updateIndex runs fn on the current index under the index lock and writes
// the result atomically if fn succeeds.
func (s *Store) updateIndex(ctx context.Context, fn func(ix *repoIndex) error) error {
	l, err := s.lockIndex(ctx)
	if err != nil {
		return fmt.Errorf("image index: %w", err)
	}
	defer l.Release()
	ix, err := s.readIndex()
	if err != nil {
		return err
	}
	if err := fn(ix); err != nil {
		return err
	}
	ix.Version = 1
	for _, rec := range ix.Images {
		sort.Strings(rec.RepoDigests)
		rec.RepoDigests = slices.Compact(rec.RepoDigests)
	}
	if err := state.WriteJSON(s.path(indexFile), ix); err != nil {
		return fmt.Errorf("image index: %w", err)
	}
	return nil
}

// tagsOf returns the tags naming id, sorted.
func (ix *repoIndex) tagsOf(id string) []string {
	var tags []string
	for t, i := range ix.Tags {
		if i == id {
			tags = append(tags, t)
		}
	}
	sort.Strings(tags)
	return tags
}

// lookup resolves a local reference to an image ID. It accepts, in this
// order: a full image ID (sha256:hex or hex), a digest the image was pulled
// or pushed as, name:tag, name@digest, and a unique prefix of an image ID.
func (s *Store) lookup(ix *repoIndex, ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("empty image reference: %w", engine.ErrInvalid)
	}
	if hexPart, ok := strings.CutPrefix(ref, "sha256:"); ok && len(hexPart) == 64 && isHex(hexPart) {
		if _, ok := ix.Images[ref]; ok {
			return ref, nil
		}
		for id, rec := range ix.Images {
			if rec.Manifest == ref || rec.Index == ref || rec.Digest == ref {
				return id, nil
			}
		}
		return "", fmt.Errorf("image %s: %w", ref, engine.ErrNotFound)
	}
	if len(ref) == 64 && isHex(ref) {
		if _, ok := ix.Images["sha256:"+ref]; ok {
			return "sha256:" + ref, nil
		}
	}
	if r, err := name.ParseReference(ref); err == nil {
		switch r := r.(type) {
		case name.Tag:
			if id, ok := ix.Tags[familiarTag(r)]; ok {
				return id, nil
			}
		case name.Digest:
			want := familiarDigest(r.Context(), r.DigestStr())
			for id, rec := range ix.Images {
				if slices.Contains(rec.RepoDigests, want) {
					return id, nil
				}
			}
			// The content may be here under another name of the same
			// repository (pulled by tag, then asked for by digest).
			repo := familiarRepo(r.Context())
			for id, rec := range ix.Images {
				if rec.Manifest != r.DigestStr() && rec.Index != r.DigestStr() && rec.Digest != r.DigestStr() {
					continue
				}
				for _, t := range ix.tagsOf(id) {
					if strings.HasPrefix(t, repo+":") {
						return id, nil
					}
				}
			}
			return "", fmt.Errorf("image %s: %w", ref, engine.ErrNotFound)
		}
	}
	prefix := strings.TrimPrefix(ref, "sha256:")
	if isHex(prefix) {
		var found []string
		for id := range ix.Images {
			if strings.HasPrefix(strings.TrimPrefix(id, "sha256:"), prefix) {
				found = append(found, id)
			}
		}
		switch len(found) {
		case 1:
			return found[0], nil
		case 0:
		default:
			return "", fmt.Errorf("image ID prefix %q is ambiguous (%d images): %w", ref, len(found), engine.ErrInvalid)
		}
	}
	return "", fmt.Errorf("image %s: %w", ref, engine.ErrNotFound)
}
