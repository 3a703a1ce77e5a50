// Package cgroup puts a container's processes in a cgroup, limits its
// memory, CPU and pids, reads its usage, detects OOM kills, and kills and
// removes it. It is a thin adapter over github.com/containerd/cgroups/v3 and
// the only package of berth that imports it.
//
// # Hosts
//
// HostMode says how the host mounts cgroups. On v1 and hybrid hosts (these
// machines: cpu, memory, pids... are v1 controllers, and the unified
// hierarchy at /sys/fs/cgroup/unified has none) a Cgroup is one directory of
// the same path in every v1 hierarchy but cpuset (memory, cpu, cpuacct,
// pids, freezer, devices, blkio, name=systemd), through containerd's
// cgroup1; the controller-less unified hierarchy is not used. berth sets no
// cpusets, and a new cpuset cgroup costs milliseconds of scheduler-domain
// rebuild per start. On unified hosts a Cgroup is one directory of the
// cgroup2 hierarchy, through containerd's cgroup2, with the cpu, memory and
// pids controllers enabled in its ancestors (those the host offers: a limit
// whose controller is missing is an error, never silently dropped).
//
// # Paths
//
// A container's cgroup is PathFor(id) = "/berth/<id>" (Root is "/berth").
// Delete removes the parent too when it is left empty, so a host without
// containers has no /berth anywhere. List(Root) returns every container
// cgroup, so that after a crash the runtime can KillAll and Delete those no
// container record owns.
//
// # Limits
//
// New and Update take engine.Resources; a zero field means no limit, and
// Update writes every field, so a zero removes a previous limit.
//
//	MemoryBytes  v1: memory.limit_in_bytes, and memory.memsw.limit_in_bytes set
//	             to the same value when swap accounting exists (no swap on top).
//	             v2: memory.max, and memory.swap.max 0 when it exists.
//	NanoCPUs     CFS quota over a 100 ms period: v1 cpu.cfs_quota_us and
//	             cpu.cfs_period_us, v2 cpu.max. At least 0.01 CPU.
//	CPUShares    v1 cpu.shares (0 = the default 1024); v2 cpu.weight, converted
//	             with containerd's formula that maps 2, 1024, 262144 to 1, 100,
//	             10000.
//	PidsLimit    pids.max (0 or negative = "max", as Docker's -1).
//
// # Devices
//
// New also restricts device access, as Docker does by default: any device
// node may be created (mknod, so images with device files unpack), but only
// null, zero, full, random, urandom, tty, console, ptmx and pts/* may be
// read or written. Without it, CAP_MKNOD, in the default capability set,
// would let a container create and open the host's disks. v1 writes
// devices.deny and devices.allow; v2 attaches containerd's eBPF device
// filter. The rules are set when the cgroup is created, never rewritten
// under a running container.
//
// Nothing here needs CAP_SYS_RESOURCE or other privileges a container
// engine's root may lack: swappiness, oom_control, kernel memory and
// real-time CPU settings are never written.
//
// # Starting a process inside the cgroup
//
// The process must be in its cgroup before it runs anything of the
// container's, or its first children escape. On v2, clone3 with
// CLONE_INTO_CGROUP starts it there: OpenFD gives the directory to pass as
// SysProcAttr.CgroupFD. v1 has no such flag (OpenFD fails with
// engine.ErrUnsupported): start the child blocked on a pipe, Add it, then
// release it. Add writes the pid to cgroup.procs in each hierarchy and
// nothing else.
//
//	cg, err := cgroup.New(cgroup.PathFor(id), cfg.Resources)
//	...
//	f, err := cg.OpenFD()
//	switch {
//	case err == nil:
//		defer f.Close()
//		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(f.Fd())
//	case !errors.Is(err, engine.ErrUnsupported):
//		return err
//	}
//	if err := cmd.Start(); err != nil { ... } // the init waits on its sync pipe
//	if !cmd.SysProcAttr.UseCgroupFD {
//		if err := cg.Add(cmd.Process.Pid); err != nil { ... } // kill the child
//	}
//	// now release the init
//
// A cgroup namespace, if the init makes one, must be unshared after the
// process is in its cgroup, so that the namespace's root is that cgroup.
//
// # Ending
//
// After the container's process exits, read OOMKilled (and Stats) before
// Delete: the counters go with the cgroup. KillAll kills whatever is left
// (v2: cgroup.kill; v1: freeze, SIGKILL every process, thaw, repeated until
// empty) and waits, bounded by its ctx or DefaultKillTimeout; then Delete.
// Processes that are killed but not yet reaped by their parent do not keep
// a cgroup from being deleted.
//
// # Errors
//
// Errors wrap berth's classes: engine.ErrNotFound (the cgroup is gone),
// engine.ErrInUse (Delete of a cgroup with processes), engine.ErrInvalid
// (a bad path or resource value), engine.ErrUnsupported (a limit whose
// controller the host lacks, OpenFD on v1, no cgroups at all).
package cgroup
