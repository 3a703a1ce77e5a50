// Package local is the embedded engine: images, containers, networks and
// volumes managed in-process, with all state under one data root. No daemon
// is needed; containers outlive the process through their monitors, and any
// number of berth processes may share a data root (they serialize on locks).
//
// Layout of the data root:
//
//	images/       content store and layer snapshots (engine/image)
//	containers/   one directory per container: record, read-write layer, logs (engine/container)
//	volumes/      named volumes (engine/volume)
//	networks/     network records and IP allocations (engine/network)
//	run/          what has no meaning after a reboot: netns bind mounts, sockets, helper pids
//	projects/     the reconciler's per-project lock and status files (not the engine's)
package local
