// Package shim is the part of berth that runs outside the berth command: the
// per-container monitor (role berth-monitor, like conmon or containerd-shim),
// the container init (berth-init) and the exec init (berth-exec). Each is the
// berth binary re-executed from a sealed copy (see Seal).
//
// The package imports only the standard library and berth's small leaf
// packages, and dispatches its roles from its own init function. Go
// initializes packages in import-path order where dependencies allow, so
// berth.dev/berth/engine/container/shim runs once its own dependencies have,
// before the heavy github.com/* packages that the berth command links: a
// monitor or an init never pays for their initialization, in start-up time
// (page faults, on these machines) or in memory. That holds only while every
// dependency of the package, direct or not, initializes early too: a
// standard package that sorts late (path/filepath, os/exec, runtime/debug)
// or golang.org/x/sys waits for most of the command's packages, and with it
// the dispatch. Keep to the standard packages this package already imports,
// path rather than path/filepath, and raw system calls (sys_linux.go). Code
// here must never call into a package it does not import for that reason.
//
// The engine (package container) talks to the roles through files in the
// container directory and through inherited descriptors:
//
//   - the monitor reads the container record (container.json, written by the
//     engine) for its Spec and restart policy, and is the only writer of
//     state.json while it lives;
//   - a monitor is started before its container is ready (early, in a berth
//     command's init functions, see StartEarlyMonitor), forks the init at
//     once, and waits for the engine's "go" on an inherited control socket,
//     which brings the container's directory, the attach listener and the
//     monitor's log file; it reports the outcome of the first start on the
//     same socket (control_linux.go);
//   - init and exec-init read their configuration from an inherited
//     SOCK_SEQPACKET socket whose number is in _BERTH_INITPIPE (runc's
//     _LIBCONTAINER_INITPIPE) and report setup failures on it as structured
//     InitError messages; the socket is close-on-exec, so end of file after
//     an "exec" message means the user's command runs.
//
// No seccomp profile is applied: containers get Docker's namespaces,
// capability set, masked paths and no_new_privs, but not its syscall filter.
package shim
