package registry

import (
	"encoding/json"
	"errors"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/engine/state"
)

// Repository names and tags, as the distribution spec defines them.
// (compiled on first use, to keep the berth binary's start-up light).
var (
	nameRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	})
	tagRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`) })
)

// storage is the registry's disk layout under root:
//
//	blobs/<alg>/<hex>                            content, shared by all repositories
//	repositories/<name>/_layers/<alg>/<hex>      blob links (empty files)
//	repositories/<name>/_manifests/<alg>/<hex>   manifest links (hold the media type)
//	repositories/<name>/_tags/<tag>              tag -> manifest digest
//	repositories/<name>/_referrers/<alg>/<subject-hex>/<alg>-<hex>  referrer descriptors
//	uploads/<id>/{info.json,data}                uploads in progress
//
// Content enters blobs/ by rename after its digest was verified; links and
// tags are replaced atomically. Repository name components start with
// [a-z0-9], so the "_" directories never collide with a repository.
type storage struct {
	root string
	// stripes serialize, per digest, linking a blob into a repository
	// against deleting the shared content once no repository links it.
	stripes [64]sync.Mutex
}

func (s *storage) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

func (s *storage) lockDigest(d digest.Digest) func() {
	h := fnv.New32a()
	h.Write([]byte(d))
	m := &s.stripes[h.Sum32()%uint32(len(s.stripes))]
	m.Lock()
	return m.Unlock
}

func (s *storage) blobPath(d digest.Digest) string {
	return s.path("blobs", string(d.Algorithm()), d.Encoded())
}

func (s *storage) repoPath(name string, elem ...string) string {
	return s.path(append([]string{"repositories", filepath.FromSlash(name)}, elem...)...)
}

func (s *storage) layerLink(name string, d digest.Digest) string {
	return s.repoPath(name, "_layers", string(d.Algorithm()), d.Encoded())
}

func (s *storage) manifestLink(name string, d digest.Digest) string {
	return s.repoPath(name, "_manifests", string(d.Algorithm()), d.Encoded())
}

func (s *storage) tagPath(name, tag string) string { return s.repoPath(name, "_tags", tag) }

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// hasBlob reports whether repo name links blob d, and its size.
func (s *storage) hasBlob(name string, d digest.Digest) (int64, bool) {
	if !exists(s.layerLink(name, d)) {
		return 0, false
	}
	fi, err := os.Stat(s.blobPath(d))
	if err != nil {
		return 0, false
	}
	return fi.Size(), true
}

// commitBlob moves a verified file into blobs/ (keeping the copy already
// there, identical by digest) and links it into repo name.
func (s *storage) commitBlob(name string, d digest.Digest, src string) error {
	unlock := s.lockDigest(d)
	defer unlock()
	dst := s.blobPath(d)
	if exists(dst) {
		os.Remove(src)
	} else {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Rename(src, dst); err != nil {
			return err
		}
		if err := state.SyncDir(filepath.Dir(dst)); err != nil {
			return err
		}
	}
	return s.link(s.layerLink(name, d), nil)
}

// putContent stores small content (a manifest) in blobs/ durably.
func (s *storage) putContent(d digest.Digest, data []byte) error {
	dst := s.blobPath(d)
	if fi, err := os.Stat(dst); err == nil && fi.Size() == int64(len(data)) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return state.WriteFile(dst, data, 0o644)
}

// linkBlob links existing content d into repo name (a cross-repository
// mount). It reports false if the content is not stored.
func (s *storage) linkBlob(name string, d digest.Digest) (bool, error) {
	unlock := s.lockDigest(d)
	defer unlock()
	if !exists(s.blobPath(d)) {
		return false, nil
	}
	return true, s.link(s.layerLink(name, d), nil)
}

// link writes a link file atomically and durably.
func (s *storage) link(p string, content []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if content == nil && exists(p) {
		return nil
	}
	return state.WriteFile(p, content, 0o644)
}

// unlinkBlob removes repo name's link to d and deletes the content when no
// repository links it any more (as a blob or as a manifest).
func (s *storage) unlinkBlob(name string, d digest.Digest) (bool, error) {
	unlock := s.lockDigest(d)
	defer unlock()
	if err := os.Remove(s.layerLink(name, d)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	s.collect(d)
	return true, nil
}

// collect deletes the content of d if nothing links it. The caller holds
// d's stripe lock.
func (s *storage) collect(d digest.Digest) {
	for _, repo := range s.repositories() {
		if exists(s.layerLink(repo, d)) || exists(s.manifestLink(repo, d)) {
			return
		}
	}
	os.Remove(s.blobPath(d))
}

// repositories lists every repository that has a directory, sorted.
func (s *storage) repositories() []string {
	var out []string
	base := s.path("repositories")
	filepath.WalkDir(base, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() || p == base {
			return nil
		}
		if strings.HasPrefix(e.Name(), "_") {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(base, p)
		for _, sub := range []string{"_layers", "_manifests", "_tags"} {
			if exists(filepath.Join(p, sub)) {
				out = append(out, filepath.ToSlash(rel))
				break
			}
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// hasManifests reports whether repo name has any manifest or tag, which is
// what makes it appear in the catalog.
func (s *storage) hasManifests(name string) bool {
	for _, sub := range []string{"_manifests/sha256", "_manifests/sha512", "_manifests/sha384", "_tags"} {
		if entries, err := os.ReadDir(s.repoPath(name, filepath.FromSlash(sub))); err == nil && len(entries) > 0 {
			return true
		}
	}
	return false
}

// manifest returns the media type of manifest d in repo name.
func (s *storage) manifestType(name string, d digest.Digest) (string, bool) {
	data, err := os.ReadFile(s.manifestLink(name, d))
	if err != nil {
		return "", false
	}
	return string(data), true
}

// resolveTag returns the digest a tag names.
func (s *storage) resolveTag(name, tag string) (digest.Digest, bool) {
	data, err := os.ReadFile(s.tagPath(name, tag))
	if err != nil {
		return "", false
	}
	d, err := digest.Parse(strings.TrimSpace(string(data)))
	if err != nil {
		return "", false
	}
	return d, true
}

// tags lists repo name's tags, sorted.
func (s *storage) tags(name string) ([]string, bool) {
	entries, err := os.ReadDir(s.repoPath(name, "_tags"))
	if err != nil {
		return nil, exists(s.repoPath(name))
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		if tagRE().MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, true
}

// referrer is one entry of the referrers index of a subject.
type referrer struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

func (s *storage) referrerDir(name string, subject digest.Digest) string {
	return s.repoPath(name, "_referrers", string(subject.Algorithm()), subject.Encoded())
}

func (s *storage) addReferrer(name string, subject digest.Digest, r referrer) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	p := filepath.Join(s.referrerDir(name, subject), string(r.Digest.Algorithm())+"-"+r.Digest.Encoded())
	return s.link(p, data)
}

func (s *storage) removeReferrer(name string, subject, d digest.Digest) {
	os.Remove(filepath.Join(s.referrerDir(name, subject), string(d.Algorithm())+"-"+d.Encoded()))
}

// referrers lists the referrers of subject in repo name whose manifests are
// still there.
func (s *storage) referrers(name string, subject digest.Digest) ([]referrer, error) {
	dir := s.referrerDir(name, subject)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []referrer
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		var r referrer
		if err := json.Unmarshal(data, &r); err != nil {
			continue
		}
		if _, ok := s.manifestType(name, r.Digest); !ok {
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

// removeTagsOf deletes every tag of repo name that names d.
func (s *storage) removeTagsOf(name string, d digest.Digest) {
	tags, _ := s.tags(name)
	for _, t := range tags {
		if td, ok := s.resolveTag(name, t); ok && td == d {
			os.Remove(s.tagPath(name, t))
		}
	}
}

func checkName(name string) *apiError {
	if len(name) > 255 || !nameRE().MatchString(name) {
		return errNameInvalid(name)
	}
	return nil
}

// parseDigest parses a digest of an algorithm the registry can verify.
func parseDigest(s string) (digest.Digest, *apiError) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", errDigestInvalid("invalid digest %q: %v", s, err)
	}
	if !d.Algorithm().Available() {
		return "", errDigestInvalid("digest algorithm %s is not supported", d.Algorithm())
	}
	return d, nil
}
