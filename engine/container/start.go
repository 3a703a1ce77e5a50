package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container/shim"
)

// Start starts a created or exited container and returns once its process
// runs, or with the reason it could not start.
func (r *Runtime) Start(ctx context.Context, ref string) error {
	l, err := r.lock(ctx, ref)
	if err != nil {
		return err
	}
	defer l.release()
	if err := transition(l.rec.Name, r.observe(l.dir, l.rec).Status, opStart); err != nil {
		return err
	}
	_, err = r.start(ctx, l, nil, r.startMonitor(l.dir))
	return err
}

// start runs a locked container. With hello, an attach connection is made
// before the process starts, so that the caller misses none of its output.
// mon is the container's monitor, started early by the caller (startMonitor)
// so that its start-up overlaps the preparation here; start releases it, or
// closes it on failure. A nil mon (its start failed) is started here.
func (r *Runtime) start(ctx context.Context, l *locked, hello *shim.AttachHello, mon *shim.Monitor) (*net.UnixConn, error) {
	rec := l.rec
	released := false
	defer func() {
		if mon != nil && !released {
			mon.Close() // it exits, with the init it forked
		}
	}()
	spec, err := r.buildSpec(ctx, l)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", rec.Name, err)
	}
	rec.Spec = spec
	rec.ManuallyStopped, rec.Releasing = false, false
	if err := r.writeRuntimeRecord(l.dir, rec); err != nil {
		return nil, fmt.Errorf("start %s: %w", rec.Name, err)
	}
	ln, err := listenUnix(l.dir, shim.AttachSock)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", rec.Name, err)
	}
	defer ln.Close()
	var conn *net.UnixConn
	if hello != nil {
		if conn, err = dialAttach(l.dir, *hello); err != nil {
			return nil, fmt.Errorf("start %s: attach: %w", rec.Name, err)
		}
	}
	if mon == nil {
		if mon, err = r.spawnMonitor(l.dir); err != nil {
			if conn != nil {
				conn.Close()
			}
			return nil, fmt.Errorf("start %s: %w", rec.Name, err)
		}
	}
	released = true
	// A berth run's container becomes durable as its process starts: the
	// syncs overlap the monitor's work.
	durable := l.pending && !rec.Config.AutoRemove
	report, err := r.releaseMonitor(ctx, l.dir, mon, ln, durable)
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("start %s: %w", rec.Name, err)
	}
	if report.Error != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("start %s: %w", rec.Name, initFailure(report.Error))
	}
	if r.volumes != nil {
		st := r.readState(l.dir)
		for _, target := range st.Populated {
			for _, m := range rec.Config.Mounts {
				if m.Type == engine.MountVolume && m.Target == target {
					if err := r.volumes.MarkPopulated(ctx, m.Source); err != nil {
						r.log.Debug("mark volume populated", "volume", m.Source, "err", err)
					}
				}
			}
		}
	}
	return conn, nil
}

// initFailure is a start failure the container's init reported: invalid
// configuration, and exec.ErrNotFound too when the command does not exist
// (the shim does not link os/exec).
func initFailure(ie *shim.InitError) error {
	var err error = ie
	if ie.NotFound {
		err = withClass(exec.ErrNotFound, err)
	}
	return withClass(engine.ErrInvalid, err)
}

// startMonitor starts the monitor of the container in dir ahead of its
// start, or returns nil if it cannot (start then tries again and reports
// the error). A monitor the command started while it initialized is used
// first (see shim.StartEarlyMonitor).
func (r *Runtime) startMonitor(dir string) *shim.Monitor {
	if mon := shim.TakeEarlyMonitor(); mon != nil {
		go reap(mon.Pid)
		return mon
	}
	mon, err := r.spawnMonitor(dir)
	if err != nil {
		r.log.Debug("start monitor early", "err", err)
		return nil
	}
	return mon
}

// spawnMonitor starts a container's monitor from the sealed binary. It
// starts up and waits for releaseMonitor.
func (r *Runtime) spawnMonitor(dir string) (*shim.Monitor, error) {
	self, err := r.sealed()
	if err != nil {
		return nil, err
	}
	mon, err := shim.StartMonitor(self, dir)
	if err != nil {
		return nil, err
	}
	go reap(mon.Pid)
	return mon, nil
}

// reap waits for a monitor this process started, if it ends while this
// process lives (a daemon or a test); a berth command usually exits first
// and leaves it to init.
func reap(pid int) {
	var ws syscall.WaitStatus
	for {
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
			return
		}
	}
}

// releaseMonitor lets the monitor start the recorded container and waits
// for its report on the first start. With durable, the record is synced
// meanwhile.
func (r *Runtime) releaseMonitor(ctx context.Context, dir string, mon *shim.Monitor, ln *os.File, durable bool) (shim.StartReport, error) {
	logPath := filepath.Join(dir, "monitor.log")
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		mon.Close()
		return shim.StartReport{}, err
	}
	err = mon.Release(dir, ln, logf)
	logf.Close()
	if err != nil {
		mon.Close()
		return shim.StartReport{}, err
	}
	if durable {
		if err := r.syncRecord(dir); err != nil {
			r.log.Debug("sync container record", "err", err)
		}
	}
	type result struct {
		rep shim.StartReport
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer mon.Close()
		rep, ok, err := mon.Report()
		switch {
		case err != nil:
			done <- result{err: fmt.Errorf("monitor report: %w", err)}
		case !ok:
			done <- result{err: fmt.Errorf("monitor exited without a report (see %s)", logPath)}
		default:
			done <- result{rep: rep}
		}
	}()
	select {
	case res := <-done:
		return res.rep, res.err
	case <-ctx.Done():
		// The monitor goes on; the container will be recorded as it ends up.
		return shim.StartReport{}, context.Cause(ctx)
	}
}

// buildSpec computes what the monitor runs: network, cgroup, mounts,
// process. It creates the network sandbox and the cgroup.
func (r *Runtime) buildSpec(ctx context.Context, l *locked) (*shim.Spec, error) {
	rec := l.rec
	cfg := rec.Config
	for _, lower := range rec.Lowers {
		if _, err := os.Stat(lower); err != nil {
			return nil, fmt.Errorf("image layer %s: %w", lower, err)
		}
	}
	spec := &shim.Spec{
		ID:     rec.ID,
		Name:   rec.Name,
		Root:   r.root,
		Dir:    l.dir,
		Labels: cfg.Labels,
		Log:    cfg.Log,
		Stdin:  cfg.OpenStdin,
		Health: cfg.Healthcheck,
	}
	if spec.Health != nil && len(spec.Health.Test) == 0 {
		spec.Health = nil
	}
	ic := &spec.Init
	ic.Rootfs = filepath.Join(l.dir, shim.RootfsDir)
	ic.Lowers = rec.Lowers
	ic.Upper = filepath.Join(l.dir, shim.UpperDir)
	ic.Work = filepath.Join(l.dir, shim.WorkDir)
	ic.ReadOnlyRootfs = cfg.ReadOnlyRootfs
	ic.Volatile = cfg.AutoRemove
	ic.Hostname = rec.Hostname

	// Network.
	hosts := []byte(defaultHosts)
	var resolv []byte
	switch networkMode(cfg) {
	case engine.NetworkModeHost:
		if data, err := os.ReadFile("/etc/hosts"); err == nil {
			hosts = data
		}
		resolv, _ = os.ReadFile("/etc/resolv.conf")
	case engine.NetworkModeNone:
		if r.networks != nil {
			ns, err := r.networks.Sandbox(ctx, rec.ID)
			if err != nil {
				return nil, err
			}
			ic.NetNS = ns
		} else {
			ic.NewNet = true
		}
		data, _ := os.ReadFile("/etc/resolv.conf")
		resolv = dropLoopbackNameservers(data)
	case engine.NetworkModeBridge:
		ns, err := r.networks.Sandbox(ctx, rec.ID)
		if err != nil {
			return nil, err
		}
		ic.NetNS = ns
		if err := r.networks.CheckPorts(ctx, rec.ID, cfg.Ports); err != nil {
			return nil, err
		}
		att, err := r.networks.Attach(ctx, AttachRequest{
			ContainerID: rec.ID, ContainerName: rec.Name, Hostname: rec.Hostname, NsPath: ns,
			Endpoints: cfg.Networks, Ports: cfg.Ports,
		})
		if err != nil {
			return nil, err
		}
		hosts = append(hosts, att.Hosts...)
		resolv = att.ResolvConf
		rec.Ports = att.Ports
		spec.Detach = true
	}
	files := map[string][]byte{"hosts": hosts, "hostname": []byte(rec.Hostname + "\n"), "resolv.conf": resolv}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(l.dir, name), data, 0o644); err != nil {
			return nil, err
		}
	}
	ic.Hosts = filepath.Join(l.dir, "hosts")
	ic.HostnameF = filepath.Join(l.dir, "hostname")
	ic.ResolvConf = filepath.Join(l.dir, "resolv.conf")

	// Mounts.
	for _, m := range cfg.Mounts {
		sm := shim.Mount{Type: m.Type, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly, Size: m.TmpfsSize}
		switch m.Type {
		case engine.MountVolume:
			mp, err := r.volumes.Mountpoint(ctx, m.Source)
			if err != nil {
				return nil, fmt.Errorf("volume %s: %w", m.Source, err)
			}
			need, err := r.volumes.NeedsPopulate(ctx, m.Source)
			if err != nil {
				return nil, fmt.Errorf("volume %s: %w", m.Source, err)
			}
			sm.Source, sm.Populate = mp, need
		case engine.MountBind:
			if _, err := os.Stat(m.Source); err != nil {
				return nil, withClass(engine.ErrInvalid, fmt.Errorf("bind source path does not exist: %s", m.Source))
			}
		}
		ic.Mounts = append(ic.Mounts, sm)
	}

	// Process.
	caps, err := r.capabilities(cfg)
	if err != nil {
		return nil, err
	}
	user := cfg.User
	if user == "" {
		user = rec.Image.User
	}
	cwd := cfg.WorkingDir
	if cwd == "" {
		cwd = rec.Image.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	ic.Proc = shim.Process{
		Args:       rec.Command,
		Env:        containerEnv(rec.Image.Env, cfg.Env, rec.Hostname, cfg.Tty),
		User:       user,
		Cwd:        cwd,
		Caps:       caps,
		NoNewPrivs: true,
		Tty:        cfg.Tty,
	}

	// Cgroup last: nothing above may fail and leave it behind. The marker
	// says the cgroup belongs to this data root (others share /berth), for
	// gc; the monitor removes both.
	if r.cgroups != nil {
		if err := os.WriteFile(r.cgroupMarker(rec.ID), nil, 0o600); err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		cg, err := r.newCgroup(rec.ID, cfg.Resources)
		if err != nil {
			return nil, err
		}
		spec.Cgroup, spec.CgroupV2 = cg.Dirs()
		spec.CgroupMarker = r.cgroupMarker(rec.ID)
	}
	spec.Cleanup = r.cleanupRole
	return spec, nil
}

// newCgroup creates the container's cgroup, retrying once when a monitor
// removed the shared /berth parent under our feet.
func (r *Runtime) newCgroup(id string, res engine.Resources) (Cgroup, error) {
	cg, err := r.cgroups.New(cgroupPath(id), res)
	if err != nil && errors.Is(err, os.ErrNotExist) {
		cg, err = r.cgroups.New(cgroupPath(id), res)
	}
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	return cg, nil
}

const defaultHosts = `127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
fe00::0	ip6-localnet
ff00::0	ip6-mcastprefix
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
`

// dropLoopbackNameservers removes nameservers a container without network
// could not reach anyway.
func dropLoopbackNameservers(data []byte) []byte {
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" && (strings.HasPrefix(f[1], "127.") || f[1] == "::1") {
			continue
		}
		out = append(out, line)
	}
	return []byte(strings.Join(out, "\n"))
}

// containerEnv merges environments as Docker does: PATH, HOSTNAME (and TERM
// with a tty) first, then the image's, then the container's, a later value
// of a key replacing an earlier one in place; "KEY" alone removes KEY.
func containerEnv(image, user []string, hostname string, tty bool) []string {
	env := []string{"PATH=" + shim.DefaultPath, "HOSTNAME=" + hostname}
	if tty {
		env = append(env, "TERM=xterm")
	}
	index := map[string]int{}
	for i, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		index[k] = i
	}
	apply := func(kv string) {
		k, _, hasValue := strings.Cut(kv, "=")
		if k == "" {
			return
		}
		i, ok := index[k]
		switch {
		case !hasValue:
			if ok {
				env[i] = ""
				delete(index, k)
			}
		case ok:
			env[i] = kv
		default:
			index[k] = len(env)
			env = append(env, kv)
		}
	}
	for _, kv := range image {
		apply(kv)
	}
	for _, kv := range user {
		apply(kv)
	}
	out := env[:0]
	for _, kv := range env {
		if kv != "" {
			out = append(out, kv)
		}
	}
	return out
}

// listenUnix makes a listening socket dir/name, reached through a
// descriptor of dir so that a deep data root cannot exceed sun_path.
func listenUnix(dir, name string) (*os.File, error) {
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", name, err)
	}
	defer unix.Close(dfd)
	_ = unix.Unlinkat(dfd, name, 0)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", name, err)
	}
	addr := &unix.SockaddrUnix{Name: fmt.Sprintf("/proc/self/fd/%d/%s", dfd, name)}
	if err := unix.Bind(fd, addr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("listen %s: %w", name, err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("listen %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// dialUnix connects to the socket dir/name.
func dialUnix(dir, name string) (*net.UnixConn, error) {
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: fmt.Sprintf("/proc/self/fd/%d/%s", dfd, name)}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}

// dialAttach connects to a container's monitor and says hello.
func dialAttach(dir string, hello shim.AttachHello) (*net.UnixConn, error) {
	c, err := dialUnix(dir, shim.AttachSock)
	if err != nil {
		return nil, err
	}
	data, _ := json.Marshal(hello)
	if err := shim.WriteFrame(c, shim.FrameHello, data); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
