// Package image is berth's image store: a content-addressed store of OCI and
// Docker images on disk, pulls from and pushes to registries, import of a
// root filesystem, and the layer snapshots that container root filesystems
// are stacked from.
//
// # Layout
//
// Everything lives under one directory (<data-root>/images):
//
//	oci-layout             {"imageLayoutVersion":"1.0.0"}
//	blobs/sha256/<hex>     manifests, indexes, configs and compressed layers, each stored once
//	repositories.json      the reference index: name:tag -> image ID, and per image its manifest,
//	                       pinned digest and repo digests; replaced atomically (temp, fsync, rename)
//	snapshots/<id>/fs      one unpacked layer (a lowerdir of overlayfs)
//	snapshots/<id>/meta.json  the chain ID, diff ID and parent of that snapshot
//	ingest/                downloads and imports in progress; never trusted
//	lock, gc.lock          flock files
//
// The store's directory and snapshots/ carry ext4's "top of directory
// hierarchy" flag (chattr +T), so that each snapshot gets block groups of
// its own (see markTopDir).
//
// A blob enters blobs/ only by a rename after its size and digest matched the
// descriptor that named it and its data reached the disk (fsync), so a crash
// or an interrupted pull leaves at most files in ingest/ that nothing reads
// (prune removes them). Small blobs are verified again each time they are
// read; a layer is verified again (against its diff ID) whenever it is
// unpacked.
//
// # Durability of snapshots
//
// Blobs are the source of truth; snapshots are derived from them. A pull
// makes its blobs durable before it records the image, but leaves the
// snapshots it unpacked to the page cache (no fsync per file, no sync of
// hundreds of megabytes on the pull's critical path). Each snapshot records
// the kernel boot ID it was made in and whether it was synced: during the
// boot that made it the page cache is the truth, and Rootfs syncs the
// filesystem once (syncfs) before a container uses unsynced snapshots and
// marks them synced. A snapshot from an earlier boot that was never synced
// may have lost data in a crash; it is discarded and unpacked again from its
// blob.
//
// # Snapshots
//
// Each layer is unpacked once, into its own directory, keyed by its chain ID
// (the OCI image spec's identity of "this layer on top of these layers"), so
// two images that share base layers share their snapshots. A container's
// root filesystem is an overlay mount of the image's snapshots (Rootfs lists
// them, top-most first) plus a read-write upper directory of the container.
// Snapshot directories are named by the first 12 hex digits of the chain ID
// (longer on a collision) because overlayfs takes its lowerdir list in one
// page of mount options: with absolute paths under /var/lib/berth about 80
// layers fit (see LowerDir).
//
// Because every layer is its own lowerdir, a whiteout (".wh.name") becomes an
// overlayfs whiteout (a 0/0 character device named "name") and an opaque
// marker (".wh..wh..opq") becomes the trusted.overlay.opaque=y xattr on its
// directory. Unpacking whiteouts, ownership and trusted xattrs needs root.
//
// # Hostile layers
//
// A layer is untrusted input even when its digest matches. Unpacking
// resolves every path inside the snapshot with os.Root and then creates the
// final name with *at system calls on the parent directory's descriptor and
// O_NOFOLLOW, so no "..", absolute path, symbolic link or hard link can make
// it write outside the snapshot. The policy:
//
//   - Entry names are cleaned; a leading "/" is dropped (as tar and Docker do);
//     a ".." that would climb above the layer root is refused.
//   - Symbolic link targets are stored as they are: they are only ever
//     resolved inside the container's root. Writing through a symbolic link
//     that leaves the snapshot (absolute, or with too many "..") is refused.
//   - Hard link targets must name an entry inside the same layer (an absolute
//     target is taken relative to the layer root, as Docker does); a target
//     that climbs out is refused.
//   - Character and block devices are skipped, not created (with a debug log):
//     a device node in an image would give a container whatever device its
//     major/minor names, and containers get their /dev from the engine anyway.
//     FIFOs are created.
//   - Setuid and setgid bits are kept, as Docker keeps them: images such as
//     ping, su or sudo need them, and they only matter inside a container,
//     where the engine's capability set and no-new-privileges apply. So that
//     no unprivileged host user can run a setuid binary out of a snapshot,
//     the store directory is created mode 0700.
//   - Extended attributes are kept (file capabilities in security.capability
//     included), except trusted.overlay.*, which would let a layer forge
//     overlayfs metadata (opaque directories, redirects) and is dropped.
//   - A decompression bomb is stopped by a size limit on the uncompressed
//     stream: at most 256 times the compressed size once past 512 MiB, and
//     never more than WithMaxLayerSize (default 64 GiB). Long runs of zeros
//     are written as holes, so a bomb fills no disk before it is stopped.
//   - A truncated or corrupt stream is an error, and the uncompressed stream
//     must hash to the diff ID the image config names.
//
// Any error discards the snapshot being built; nothing half-unpacked is ever
// renamed into place.
//
// # Pull and push
//
// A pull resolves the reference to a manifest (choosing the platform from an
// index), then brings in every layer it lacks, up to WithJobs at a time; the
// downloads of missing layers start while the image config is fetched. A
// missing layer streams from the registry through three goroutines: one
// hashes the compressed bytes into the blob file (and starts its fsync as
// soon as it is complete), one decompresses, one hashes the tar stream and
// writes the files of the snapshot. A push sends
// the stored manifest byte for byte after making sure the registry has every
// blob: it may already, it may mount it from a repository of the same
// registry the store knows holds it, or it gets it in one streamed PUT.
//
// # Concurrency
//
// Any number of berth processes may share the store. Writers of
// repositories.json hold the "lock" flock while they read, change and replace
// it. Pulls, imports and Rootfs hold "gc.lock" shared while they add content;
// Prune (and the clean-up after Remove) hold it exclusive, so garbage
// collection never deletes a blob or snapshot that a concurrent pull is about
// to reference. Images a container uses (WithUsers) are never deleted by
// Prune, and Remove refuses them with engine.ErrInUse unless forced; a forced
// removal keeps the image, untagged, for as long as a container uses it.
//
// # Registries
//
// Credentials come from the Docker config file (~/.docker/config.json, or
// $DOCKER_CONFIG/config.json) and its credential helpers, through
// go-containerregistry's default keychain. Plain HTTP is allowed only to
// loopback addresses and to the registries given with
// WithInsecureRegistries (host, host:port or CIDR); any other plain-HTTP
// request, a redirect included, is refused, and every other registry is
// spoken to over HTTPS only. A registry that may use plain HTTP is probed
// with a plain GET /v2/ first: when it answers as a registry, the TLS
// attempt is skipped, and the answer stands for the authentication
// handshake's ping.
package image
