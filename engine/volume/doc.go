// Package volume keeps berth's named volumes: directories under
// <data-root>/volumes that outlive the containers mounting them.
//
// A volume is <root>/<name>/_data (what a container mounts) beside
// <root>/<name>/volume.json (name, driver "local", labels, creation time,
// populated marker), written atomically. Names follow Docker's rule
// [a-zA-Z0-9][a-zA-Z0-9_.-]*. A volume appears and disappears by renaming
// its directory, so a crash leaves a whole volume or none, and readers take
// no lock; changes serialize on a flock (<root>/.lock), so any number of
// berth processes may share the store.
//
// *Store implements engine.Volumes. Which containers use a volume is not
// stored but asked when needed from the callback given with WithUsers
// (engine/local derives it from the container records), so a removed
// container can never leave a volume "in use". Remove refuses a volume in
// use with engine.ErrInUse; Prune removes the others and reports the bytes
// freed.
//
// For the container runtime: Mountpoint returns the directory to bind mount
// for a named volume, creating the volume if nobody did (as Docker does for
// `-v name:/path`). NeedsPopulate and MarkPopulated implement Docker's copy
// of the image's content into an empty volume at its first mount; see
// NeedsPopulate for the contract.
package volume
