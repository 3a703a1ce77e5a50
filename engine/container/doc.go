// Package container is berth's container runtime: it implements
// engine.Containers on a data root, with the processes themselves run by
// per-container monitors (package shim).
//
// # Layout
//
//	<root>/containers/<id>/container.json   the record (engine writes, under the lock)
//	<root>/containers/<id>/state.json       runtime state (the monitor writes while it lives)
//	<root>/containers/<id>/lock             flock serializing operations on the container
//	<root>/containers/<id>/upper, work      the overlayfs read-write layer
//	<root>/containers/<id>/rootfs           overlay mount point, used only inside the container
//	<root>/containers/<id>/container.log*   CRI-format logs, rotated
//	<root>/containers/<id>/attach.sock      the monitor's attach socket
//	<root>/containers/<id>/hosts, hostname, resolv.conf
//	<root>/containers/.names/<name>         symlink to the ID: names are reserved atomically
//	<root>/containers/.tmp-<id>             a container being created
//	<root>/containers/.pending-<id>         a berth run whose process has not started yet
//	<root>/containers/.removing-<id>        a container being removed
//
// # State machine
//
//	created --start--> running --exit--> exited | restarting --backoff--> running
//	running|restarting --stop/kill--> exited;  any --remove--> removing --> gone
//	running whose monitor vanished without recording the exit --> dead
//
// Operations check the transition they need (see transition) and fail with
// engine.ErrRunning, engine.ErrNotRunning or engine.ErrIllegalState.
//
// # Truth
//
// The record says what the user asked for; state.json says what the monitor
// last saw. Neither is trusted alone: a recorded monitor or init process is
// believed only while its pid, start time and boot ID still match
// (state.Process.Alive), so a container whose monitor was killed reads as
// dead, and every container reads as dead after a reboot.
//
// # Crash safety
//
// A container appears by the rename of its .tmp- directory and disappears
// by the rename to .removing-, each under the container's lock. berth run
// marks the container .pending- until its process runs. Every Runtime, when
// it is opened (that is, in every berth command), collects what a killed
// berth command left: .tmp- and .removing- directories and pending
// containers whose lock is free and whose process never started, and
// cgroups under /berth that no live container owns. This costs one readdir
// of the containers directory and one of the /berth cgroup.
//
// # Processes
//
// Start spawns a monitor (shim role berth-monitor) from the sealed berth
// binary, detached in its own session, before it prepares the container
// (berth run and start take the one the command started while it
// initialized), so that the monitor's start-up overlaps the preparation;
// once the record is written it releases the monitor and waits for its
// report of the first start. The monitor forks the init at once, with new
// pid, mount, uts and ipc namespaces, blocked until the configuration comes
// with its stdio and the network namespace (an open descriptor: the
// namespace's bind mount may be younger than the init's mount namespace);
// the init joins the cgroup before it is released, unshares a cgroup
// namespace there, mounts the overlay rootfs inside its own mount namespace
// and enters it with pivot_root. No seccomp filter is installed.
//
// # Durability
//
// Records are made durable (fsync) when the user relies on them surviving a
// crash of the machine: a created container, and a berth run's container
// once it runs (the syncs overlap the monitor's start). What only matters
// while processes run is not synced (state.json, the spec written at each
// start, the stop flag), nor is anything of an AutoRemove container, which a
// crash of the machine ends anyway: its overlay is even mounted volatile, so
// that its exit does not sync the data root's file system.
package container
