// Package state holds the engine's on-disk bookkeeping primitives: atomic
// record files (temp file, fsync, rename, fsync of the directory), advisory
// file locks that serialize berth processes, and process identity (pid plus
// kernel start time) so that a recorded pid is trusted only while it still
// names the same process.
package state
