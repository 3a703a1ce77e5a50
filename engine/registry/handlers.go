package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// Media types the registry looks into.
const (
	mtOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mtOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtDockerSchema1  = "application/vnd.docker.distribution.manifest.v1+json"
	mtDockerSigned   = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// ------------------------------------------------------------------ blobs

func (r *Registry) getBlob(w http.ResponseWriter, req *http.Request, name, ref string) *apiError {
	d, aerr := parseDigest(ref)
	if aerr != nil {
		return aerr
	}
	if _, ok := r.st.hasBlob(name, d); !ok {
		return errBlobUnknown(d.String())
	}
	f, err := os.Open(r.st.blobPath(d))
	if err != nil {
		return errBlobUnknown(d.String())
	}
	defer f.Close()
	h := w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Etag", `"`+d.String()+`"`)
	h.Set("Cache-Control", "max-age=31536000")
	// ServeContent answers Range requests (206, 416) and HEAD.
	http.ServeContent(w, req, "", time.Time{}, f)
	return nil
}

func (r *Registry) deleteBlob(w http.ResponseWriter, req *http.Request, name, ref string) *apiError {
	d, aerr := parseDigest(ref)
	if aerr != nil {
		return aerr
	}
	ok, err := r.st.unlinkBlob(name, d)
	if err != nil {
		return errInternal(err)
	}
	if !ok {
		return errBlobUnknown(d.String())
	}
	return empty(w, http.StatusAccepted)
}

// ---------------------------------------------------------------- uploads

func (r *Registry) startUpload(w http.ResponseWriter, req *http.Request, name, _ string) *apiError {
	q := req.URL.Query()
	if mount := q.Get("mount"); mount != "" {
		d, aerr := parseDigest(mount)
		if aerr != nil {
			return aerr
		}
		linked := false
		if from := q.Get("from"); from != "" {
			if checkName(from) == nil {
				if _, ok := r.st.hasBlob(from, d); ok {
					var err error
					if linked, err = r.st.linkBlob(name, d); err != nil {
						return errInternal(err)
					}
				}
			}
		} else {
			// Anonymous mount: content the registry holds in any repository.
			var err error
			if linked, err = r.st.linkBlob(name, d); err != nil {
				return errInternal(err)
			}
		}
		if linked {
			return blobCreated(w, name, d)
		}
		// Not mountable: fall back to an upload session, as the spec says.
	}
	if dg := q.Get("digest"); dg != "" {
		d, aerr := parseDigest(dg)
		if aerr != nil {
			return aerr
		}
		up, err := r.uploads.start(name, d.Algorithm())
		if err != nil {
			return errInternal(err)
		}
		up.mu.Lock()
		defer up.mu.Unlock()
		aerr = r.complete(w, req, up, d)
		if aerr != nil {
			// The client never learnt of this session: drop it.
			r.uploads.forget(up)
		}
		return aerr
	}
	alg := digest.Canonical
	if a := q.Get("digest-algorithm"); a != "" {
		alg = digest.Algorithm(a)
		if !alg.Available() {
			return errDigestInvalid("digest algorithm %q is not supported", a)
		}
	}
	up, err := r.uploads.start(name, alg)
	if err != nil {
		return errInternal(err)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	return uploadAccepted(w, name, up, http.StatusAccepted)
}

func uploadLocation(name, id string) string { return "/v2/" + name + "/blobs/uploads/" + id }

// setUploadHeaders tells a client where an upload stands.
func setUploadHeaders(w http.ResponseWriter, name string, up *upload) {
	h := w.Header()
	h.Set("Location", uploadLocation(name, up.id))
	h.Set("Range", up.rangeHeader())
	h.Set("Docker-Upload-UUID", up.id)
}

// empty answers with status and no body.
func empty(w http.ResponseWriter, status int) *apiError {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
	return nil
}

func uploadAccepted(w http.ResponseWriter, name string, up *upload, status int) *apiError {
	setUploadHeaders(w, name, up)
	return empty(w, status)
}

func blobCreated(w http.ResponseWriter, name string, d digest.Digest) *apiError {
	w.Header().Set("Location", "/v2/"+name+"/blobs/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	return empty(w, http.StatusCreated)
}

func (r *Registry) uploadStatus(w http.ResponseWriter, req *http.Request, name, id string) *apiError {
	up, aerr := r.uploads.get(name, id)
	if aerr != nil {
		return aerr
	}
	defer up.mu.Unlock()
	return uploadAccepted(w, name, up, http.StatusNoContent)
}

func (r *Registry) cancelUpload(w http.ResponseWriter, req *http.Request, name, id string) *apiError {
	up, aerr := r.uploads.get(name, id)
	if aerr != nil {
		return aerr
	}
	r.uploads.forget(up)
	up.mu.Unlock()
	return empty(w, http.StatusNoContent)
}

// checkRange verifies that a chunk's Content-Range starts where the upload
// stands. Out-of-order chunks get 416 with the current Range, so a client
// can resume.
func checkRange(w http.ResponseWriter, req *http.Request, name string, up *upload) *apiError {
	cr := req.Header.Get("Content-Range")
	if cr == "" {
		return nil
	}
	cr = strings.TrimPrefix(strings.TrimSpace(cr), "bytes ")
	cr = strings.TrimPrefix(cr, "bytes=")
	if i := strings.IndexByte(cr, '/'); i >= 0 {
		cr = cr[:i]
	}
	startS, endS, ok := strings.Cut(cr, "-")
	start, err1 := strconv.ParseInt(startS, 10, 64)
	end, err2 := strconv.ParseInt(endS, 10, 64)
	if !ok || err1 != nil || err2 != nil || end < start-1 ||
		(req.ContentLength >= 0 && req.ContentLength != end-start+1) || start != up.size {
		setUploadHeaders(w, name, up)
		return errf(http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID", "content range %q does not continue the upload at byte %d", req.Header.Get("Content-Range"), up.size)
	}
	return nil
}

func (r *Registry) patchUpload(w http.ResponseWriter, req *http.Request, name, id string) *apiError {
	up, aerr := r.uploads.get(name, id)
	if aerr != nil {
		return aerr
	}
	defer up.mu.Unlock()
	if aerr := checkRange(w, req, name, up); aerr != nil {
		return aerr
	}
	buf, put := r.buffer()
	defer put()
	if _, err := up.append(req.Body, *buf); err != nil {
		return errUploadInvalid("reading the chunk: %v", err)
	}
	return uploadAccepted(w, name, up, http.StatusAccepted)
}

func (r *Registry) finishUpload(w http.ResponseWriter, req *http.Request, name, id string) *apiError {
	up, aerr := r.uploads.get(name, id)
	if aerr != nil {
		return aerr
	}
	defer up.mu.Unlock()
	dg := req.URL.Query().Get("digest")
	if dg == "" {
		return errDigestInvalid("the digest parameter is required to complete an upload")
	}
	d, aerr := parseDigest(dg)
	if aerr != nil {
		return aerr
	}
	if aerr := checkRange(w, req, name, up); aerr != nil {
		return aerr
	}
	return r.complete(w, req, up, d)
}

// complete appends the request body (the last chunk, or a monolithic
// upload), verifies the digest and commits the blob. The caller holds up.mu.
func (r *Registry) complete(w http.ResponseWriter, req *http.Request, up *upload, d digest.Digest) *apiError {
	buf, put := r.buffer()
	defer put()
	if _, err := up.append(req.Body, *buf); err != nil {
		return errUploadInvalid("reading the upload: %v", err)
	}
	got, err := up.digestAs(d.Algorithm())
	if err != nil {
		return errInternal(err)
	}
	if got != d {
		r.uploads.forget(up)
		return errDigestInvalid("content has digest %s, not %s", got, d)
	}
	if err := up.sync(); err != nil {
		return errInternal(err)
	}
	if err := r.st.commitBlob(up.repo, d, filepath.Join(up.dir, "data")); err != nil {
		return errInternal(err)
	}
	r.uploads.forget(up)
	return blobCreated(w, up.repo, d)
}

// -------------------------------------------------------------- manifests

// manifestProbe is what the registry reads of a manifest or index.
type manifestProbe struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *descriptor       `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Manifests     []descriptor      `json:"manifests"`
	Subject       *descriptor       `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

type descriptor struct {
	MediaType string        `json:"mediaType"`
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
	URLs      []string      `json:"urls"`
}

func nondistributable(d descriptor) bool {
	return len(d.URLs) > 0 ||
		strings.Contains(d.MediaType, ".nondistributable.") ||
		d.MediaType == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
}

func (r *Registry) putManifest(w http.ResponseWriter, req *http.Request, name, ref string) *apiError {
	data, err := io.ReadAll(io.LimitReader(req.Body, r.maxManifest+1))
	if err != nil {
		return errManifestInvalid("reading the manifest: %v", err)
	}
	if int64(len(data)) > r.maxManifest {
		return errf(http.StatusRequestEntityTooLarge, "SIZE_INVALID", "manifest larger than %d bytes", r.maxManifest)
	}
	var m manifestProbe
	if err := json.Unmarshal(data, &m); err != nil {
		return errManifestInvalid("manifest is not valid JSON: %v", err)
	}
	ct, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	mt := m.MediaType
	if mt == "" {
		mt = ct
	}
	if m.MediaType != "" && ct != "" && ct != m.MediaType {
		return errManifestInvalid("Content-Type %s does not match the manifest's mediaType %s", ct, m.MediaType)
	}
	switch mt {
	case mtOCIManifest, mtDockerManifest, mtOCIIndex, mtDockerList:
	case mtDockerSchema1, mtDockerSigned:
		return errManifestInvalid("docker schema 1 manifests are not supported")
	case "":
		return errManifestInvalid("manifest has no media type")
	}

	var d digest.Digest
	if strings.Contains(ref, ":") {
		want, aerr := parseDigest(ref)
		if aerr != nil {
			return aerr
		}
		if got := want.Algorithm().FromBytes(data); got != want {
			return errDigestInvalid("manifest has digest %s, not %s", got, want)
		}
		d = want
	} else {
		if !tagRE().MatchString(ref) {
			return errf(http.StatusBadRequest, "TAG_INVALID", "invalid tag %q", ref)
		}
		d = digest.Canonical.FromBytes(data)
	}
	tags := req.URL.Query()["tag"]
	for _, t := range tags {
		if !tagRE().MatchString(t) {
			return errf(http.StatusBadRequest, "TAG_INVALID", "invalid tag %q", t)
		}
	}

	// Every digest it names must be well formed before it goes near a path.
	descs := append(append([]descriptor(nil), m.Layers...), m.Manifests...)
	if m.Config != nil {
		descs = append(descs, *m.Config)
	}
	if m.Subject != nil {
		descs = append(descs, *m.Subject)
	}
	for _, dd := range descs {
		if _, aerr := parseDigest(dd.Digest.String()); aerr != nil {
			return errManifestInvalid("manifest references an invalid digest %q", dd.Digest)
		}
	}
	// Everything a manifest references must be here (except layers that are
	// not distributed through registries); a subject need not be.
	switch mt {
	case mtOCIManifest, mtDockerManifest:
		if m.Config == nil {
			return errManifestInvalid("image manifest without a config")
		}
		for _, b := range append([]descriptor{*m.Config}, m.Layers...) {
			if nondistributable(b) {
				continue
			}
			if _, ok := r.st.hasBlob(name, b.Digest); !ok {
				return &apiError{Status: http.StatusBadRequest, Code: "MANIFEST_BLOB_UNKNOWN",
					Message: "manifest references a blob unknown to the repository", Detail: map[string]string{"digest": b.Digest.String()}}
			}
		}
	case mtOCIIndex, mtDockerList:
		for _, c := range m.Manifests {
			if _, ok := r.st.manifestType(name, c.Digest); !ok {
				return &apiError{Status: http.StatusBadRequest, Code: "MANIFEST_BLOB_UNKNOWN",
					Message: "index references a manifest unknown to the repository", Detail: map[string]string{"digest": c.Digest.String()}}
			}
		}
	}

	unlock := r.st.lockDigest(d)
	err = r.st.putContent(d, data)
	if err == nil {
		err = r.st.link(r.st.manifestLink(name, d), []byte(mt))
	}
	unlock()
	if err != nil {
		return errInternal(err)
	}
	if m.Subject != nil {
		at := m.ArtifactType
		if at == "" && m.Config != nil && (mt == mtOCIManifest || mt == mtDockerManifest) {
			at = m.Config.MediaType
		}
		ref := referrer{MediaType: mt, Digest: d, Size: int64(len(data)), ArtifactType: at, Annotations: m.Annotations}
		if err := r.st.addReferrer(name, m.Subject.Digest, ref); err != nil {
			return errInternal(err)
		}
		w.Header().Set("OCI-Subject", m.Subject.Digest.String())
	}
	if !strings.Contains(ref, ":") {
		tags = append([]string{ref}, tags...)
	}
	for _, t := range tags {
		if err := writeTag(r.st, name, t, d); err != nil {
			return errInternal(err)
		}
	}
	if q := req.URL.Query()["tag"]; len(q) > 0 {
		w.Header().Set("OCI-Tag", strings.Join(q, ", "))
	}
	w.Header().Set("Location", "/v2/"+name+"/manifests/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	return empty(w, http.StatusCreated)
}

func writeTag(st *storage, name, tag string, d digest.Digest) error {
	return st.link(st.tagPath(name, tag), []byte(d.String()))
}

// manifestDigest resolves a manifest reference (tag or digest).
func (r *Registry) manifestDigest(name, ref string) (digest.Digest, *apiError) {
	if strings.Contains(ref, ":") {
		d, aerr := parseDigest(ref)
		if aerr != nil {
			return "", aerr
		}
		return d, nil
	}
	if !tagRE().MatchString(ref) {
		return "", errf(http.StatusBadRequest, "TAG_INVALID", "invalid tag %q", ref)
	}
	d, ok := r.st.resolveTag(name, ref)
	if !ok {
		return "", errManifestUnknown(ref)
	}
	return d, nil
}

func (r *Registry) getManifest(w http.ResponseWriter, req *http.Request, name, ref string) *apiError {
	d, aerr := r.manifestDigest(name, ref)
	if aerr != nil {
		return aerr
	}
	mt, ok := r.st.manifestType(name, d)
	if !ok {
		return errManifestUnknown(ref)
	}
	f, err := os.Open(r.st.blobPath(d))
	if err != nil {
		return errManifestUnknown(ref)
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", mt)
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", `"`+d.String()+`"`)
	http.ServeContent(w, req, "", time.Time{}, f)
	return nil
}

func (r *Registry) deleteManifest(w http.ResponseWriter, req *http.Request, name, ref string) *apiError {
	if !strings.Contains(ref, ":") {
		if !tagRE().MatchString(ref) {
			return errf(http.StatusBadRequest, "TAG_INVALID", "invalid tag %q", ref)
		}
		if err := os.Remove(r.st.tagPath(name, ref)); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return errManifestUnknown(ref)
			}
			return errInternal(err)
		}
		return empty(w, http.StatusAccepted)
	}
	d, aerr := parseDigest(ref)
	if aerr != nil {
		return aerr
	}
	if _, ok := r.st.manifestType(name, d); !ok {
		return errManifestUnknown(ref)
	}
	if data, err := os.ReadFile(r.st.blobPath(d)); err == nil {
		var m manifestProbe
		if json.Unmarshal(data, &m) == nil && m.Subject != nil {
			r.st.removeReferrer(name, m.Subject.Digest, d)
		}
	}
	unlock := r.st.lockDigest(d)
	err := os.Remove(r.st.manifestLink(name, d))
	r.st.removeTagsOf(name, d)
	if err == nil {
		r.st.collect(d)
	}
	unlock()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errManifestUnknown(ref)
		}
		return errInternal(err)
	}
	return empty(w, http.StatusAccepted)
}

// ------------------------------------------------- tags, catalog, referrers

// paginate applies the n and last parameters to a sorted list and sets the
// Link header to the next page.
func paginate(w http.ResponseWriter, req *http.Request, all []string) ([]string, *apiError) {
	q := req.URL.Query()
	if last := q.Get("last"); last != "" {
		i := sort.SearchStrings(all, last)
		for i < len(all) && all[i] <= last {
			i++
		}
		all = all[i:]
	}
	ns := q.Get("n")
	if ns == "" {
		return all, nil
	}
	n, err := strconv.Atoi(ns)
	if err != nil || n < 0 {
		return nil, errf(http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", "invalid n %q", ns)
	}
	if n < len(all) {
		all = all[:n]
		if n > 0 {
			next := url.Values{"n": {ns}, "last": {all[n-1]}}
			w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, req.URL.Path, next.Encode()))
		}
	}
	return all, nil
}

func writeJSON(w http.ResponseWriter, contentType string, v any) *apiError {
	data, err := json.Marshal(v)
	if err != nil {
		return errInternal(err)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	w.Write(data)
	return nil
}

func (r *Registry) listTags(w http.ResponseWriter, req *http.Request, name, _ string) *apiError {
	tags, ok := r.st.tags(name)
	if !ok {
		return errNameUnknown(name)
	}
	page, aerr := paginate(w, req, tags)
	if aerr != nil {
		return aerr
	}
	if page == nil {
		page = []string{}
	}
	return writeJSON(w, "application/json", map[string]any{"name": name, "tags": page})
}

func (r *Registry) catalog(w http.ResponseWriter, req *http.Request) *apiError {
	var repos []string
	for _, repo := range r.st.repositories() {
		if r.st.hasManifests(repo) {
			repos = append(repos, repo)
		}
	}
	page, aerr := paginate(w, req, repos)
	if aerr != nil {
		return aerr
	}
	if page == nil {
		page = []string{}
	}
	return writeJSON(w, "application/json", map[string]any{"repositories": page})
}

func (r *Registry) listReferrers(w http.ResponseWriter, req *http.Request, name, ref string) *apiError {
	d, aerr := parseDigest(ref)
	if aerr != nil {
		return aerr
	}
	refs, err := r.st.referrers(name, d)
	if err != nil {
		return errInternal(err)
	}
	if at := req.URL.Query().Get("artifactType"); at != "" {
		kept := refs[:0]
		for _, x := range refs {
			if x.ArtifactType == at {
				kept = append(kept, x)
			}
		}
		refs = kept
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	if refs == nil {
		refs = []referrer{}
	}
	return writeJSON(w, mtOCIIndex, map[string]any{
		"schemaVersion": 2,
		"mediaType":     mtOCIIndex,
		"manifests":     refs,
	})
}
