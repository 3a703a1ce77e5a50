// Package registry is berth's OCI distribution registry (`berth registry
// serve`): the /v2/ API of the OCI distribution spec with everything on
// disk, so that a restart, or a kill -9, loses nothing that was
// acknowledged.
//
// It serves blobs and manifests (OCI and Docker, images and indexes) with
// sha256 and sha512 digests, range requests on blobs, tag lists and the
// catalog with pagination (n, last), the referrers API with artifactType
// filtering, and deletion of manifests, tags and blobs. Uploads may be
// monolithic (POST with a digest, or POST then PUT), chunked (PATCH with
// Content-Range, resumable: GET on the session reports Range), or streamed
// (PATCH without Content-Range); either way the bytes go straight to a file
// through a hash, so a push of any size needs one buffer of memory, and the
// digest is checked before the file is renamed into the shared blob store.
// Blobs are mounted across repositories with ?mount=&from=, or anonymously
// (?mount= alone) when the registry holds the content anywhere.
//
// Content is stored once, under blobs/<alg>/<hex>, and linked into
// repositories; deleting a blob from a repository removes the link and the
// content goes when no repository links it. Concurrent pushes of one blob
// or one tag are safe: each upload has its own file, renames are atomic, and
// linking and collecting content are serialized per digest.
//
// Optional HTTP basic authentication takes an htpasswd file of bcrypt hashes;
// TLS takes a certificate and key; each request is written to the access
// log.
package registry
