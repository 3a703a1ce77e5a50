package shim

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Docker's masked and read-only paths.
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

func relPath(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

// mountTarget creates (if needed) and opens target inside root without ever
// leaving it, and returns an O_PATH descriptor to mount on through
// /proc/self/fd (runc's way of mounting inside an untrusted tree).
func mountTarget(root *os.Root, target string, dir bool) (*os.File, error) {
	rel := relPath(target)
	if rel == "" {
		return nil, fmt.Errorf("mount on /: %w", fs.ErrInvalid)
	}
	if dir {
		if err := root.MkdirAll(rel, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
	} else {
		if parent := path.Dir(rel); parent != "." {
			if err := root.MkdirAll(parent, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return nil, err
			}
		}
		f, err := root.OpenFile(rel, os.O_RDONLY|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		f.Close()
	}
	return root.OpenFile(rel, oPath, 0)
}

func mountOn(root *os.Root, target string, dir bool, source, fstype string, flags uintptr, data string) error {
	f, err := mountTarget(root, target, dir)
	if err != nil {
		return fmt.Errorf("mount %s: %w", target, err)
	}
	defer f.Close()
	if err := syscall.Mount(source, fdPath(int(f.Fd())), fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype+source, target, err)
	}
	return nil
}

// remountReadOnly makes the mount at target read-only, keeping its other
// per-mount flags (remounting without them would fail where they are locked).
func remountReadOnly(root *os.Root, target string) error {
	f, err := root.OpenFile(relPath(target), oPath, 0)
	if err != nil {
		return fmt.Errorf("remount %s: %w", target, err)
	}
	defer f.Close()
	return remountReadOnlyPath(fdPath(int(f.Fd())), target)
}

func remountReadOnlyPath(p, name string) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(p, &st); err != nil {
		return fmt.Errorf("remount %s: %w", name, err)
	}
	flags := uintptr(st.Flags) & (syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC)
	if err := syscall.Mount("", p, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY|flags, ""); err != nil {
		return fmt.Errorf("remount %s read-only: %w", name, err)
	}
	return nil
}

// overlayData builds the overlayfs mount options.
func overlayData(c *InitConfig) string {
	esc := func(s string) string {
		s = strings.ReplaceAll(s, `\`, `\\`)
		s = strings.ReplaceAll(s, `:`, `\:`)
		return strings.ReplaceAll(s, `,`, `\,`)
	}
	lowers := make([]string, len(c.Lowers))
	for i, l := range c.Lowers {
		lowers[i] = esc(l)
	}
	data := "lowerdir=" + strings.Join(lowers, ":") + ",upperdir=" + esc(c.Upper) + ",workdir=" + esc(c.Work) + ",xino=off"
	if c.Volatile {
		data += ",volatile"
	}
	return data
}

// mountOverlay mounts the rootfs. Long lower stacks go through the new mount
// API, whose "lowerdir+" takes one layer at a time (mount(2) data is limited
// to a page).
func mountOverlay(c *InitConfig) error {
	if len(c.Lowers) == 0 {
		return errors.New("mount rootfs: no image layers")
	}
	err := mountOverlayOnce(c)
	if err != nil && c.Volatile && errors.Is(err, syscall.EINVAL) {
		// A kernel before 5.10 has no volatile overlays.
		nc := *c
		nc.Volatile = false
		err = mountOverlayOnce(&nc)
	}
	return err
}

func mountOverlayOnce(c *InitConfig) error {
	data := overlayData(c)
	if len(data) < 3800 {
		if err := syscall.Mount("overlay", c.Rootfs, "overlay", 0, data); err != nil {
			return fmt.Errorf("mount rootfs overlay: %w", err)
		}
		return nil
	}
	fsfd, err := fsopen("overlay")
	if err != nil {
		return fmt.Errorf("mount rootfs overlay: %w", err)
	}
	defer syscall.Close(fsfd)
	for _, l := range c.Lowers {
		if err := fsconfigString(fsfd, "lowerdir+", l); err != nil {
			return fmt.Errorf("mount rootfs overlay: lowerdir+ %s: %w", l, err)
		}
	}
	for _, kv := range [][2]string{{"upperdir", c.Upper}, {"workdir", c.Work}, {"xino", "off"}} {
		if err := fsconfigString(fsfd, kv[0], kv[1]); err != nil {
			return fmt.Errorf("mount rootfs overlay: %s: %w", kv[0], err)
		}
	}
	if c.Volatile {
		if err := fsconfigFlag(fsfd, "volatile"); err != nil {
			return fmt.Errorf("mount rootfs overlay: volatile: %w", err)
		}
	}
	if err := fsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("mount rootfs overlay: %w", err)
	}
	mfd, err := fsmount(fsfd)
	if err != nil {
		return fmt.Errorf("mount rootfs overlay: %w", err)
	}
	defer syscall.Close(mfd)
	if err := moveMountTo(mfd, c.Rootfs); err != nil {
		return fmt.Errorf("mount rootfs overlay: %w", err)
	}
	return nil
}

// setupRootfs builds the container's filesystem in this (new) mount
// namespace and returns the volume targets it populated. The tty master, if
// any, is sent on sock.
func setupRootfs(c *InitConfig, sock int) (populated []string, err error) {
	// Nothing mounted from here on may propagate to the host.
	if err := syscall.Mount("", "/", "", syscall.MS_SLAVE|syscall.MS_REC, ""); err != nil {
		return nil, fmt.Errorf("make / rslave: %w", err)
	}
	if err := mountOverlay(c); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(c.Rootfs)
	if err != nil {
		return nil, fmt.Errorf("open rootfs: %w", err)
	}
	defer root.Close()

	const nse = syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC
	if err := mountOn(root, "/proc", true, "proc", "proc", nse, ""); err != nil {
		return nil, err
	}
	if err := mountOn(root, "/sys", true, "sysfs", "sysfs", nse|syscall.MS_RDONLY, ""); err != nil {
		return nil, err
	}
	if err := setupDev(root, c, sock); err != nil {
		return nil, err
	}

	mounts := append([]Mount(nil), c.Mounts...)
	sort.SliceStable(mounts, func(i, j int) bool {
		return strings.Count(path.Clean(mounts[i].Target), "/") < strings.Count(path.Clean(mounts[j].Target), "/")
	})
	for _, m := range mounts {
		done, err := userMount(root, m)
		if err != nil {
			return nil, err
		}
		if done {
			populated = append(populated, m.Target)
		}
	}
	for _, f := range [][2]string{{c.Hosts, "/etc/hosts"}, {c.HostnameF, "/etc/hostname"}, {c.ResolvConf, "/etc/resolv.conf"}} {
		if f[0] == "" {
			continue
		}
		if err := mountOn(root, f[1], false, f[0], "", syscall.MS_BIND, ""); err != nil {
			return nil, err
		}
	}
	return populated, nil
}

// userMount mounts one of the user's mounts; it reports whether it filled a
// volume from the image.
func userMount(root *os.Root, m Mount) (populated bool, err error) {
	switch m.Type {
	case "tmpfs":
		data := "mode=1777"
		if m.Size > 0 {
			data += ",size=" + strconv.FormatInt(m.Size, 10)
		}
		flags := uintptr(syscall.MS_NOSUID | syscall.MS_NODEV)
		if m.ReadOnly {
			flags |= syscall.MS_RDONLY
		}
		return false, mountOn(root, m.Target, true, "tmpfs", "tmpfs", flags, data)
	default: // bind and volume
		st, err := os.Stat(m.Source)
		if err != nil {
			return false, fmt.Errorf("mount %s: %w", m.Target, err)
		}
		if m.Populate && st.IsDir() {
			if populated, err = populate(root, m); err != nil {
				return false, err
			}
		}
		f, err := mountTarget(root, m.Target, st.IsDir())
		if err != nil {
			return false, fmt.Errorf("mount %s: %w", m.Target, err)
		}
		defer f.Close()
		p := fdPath(int(f.Fd()))
		if err := syscall.Mount(m.Source, p, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return false, fmt.Errorf("bind mount %s on %s: %w", m.Source, m.Target, err)
		}
		if m.ReadOnly {
			// The descriptor names the directory under the new mount: reopen
			// to reach the mount itself.
			if err := remountReadOnly(root, m.Target); err != nil {
				return false, err
			}
		}
		return populated, nil
	}
}

// populate copies the image's content at m.Target into the volume at
// m.Source when the volume is empty, as Docker fills a new named volume.
func populate(root *os.Root, m Mount) (bool, error) {
	entries, err := os.ReadDir(m.Source)
	if err != nil || len(entries) > 0 {
		return false, nil
	}
	rel := relPath(m.Target)
	st, err := root.Stat(rel)
	if err != nil || !st.IsDir() {
		return false, nil
	}
	src, err := root.OpenRoot(rel)
	if err != nil {
		return false, nil
	}
	defer src.Close()
	dst, err := os.OpenRoot(m.Source)
	if err != nil {
		return false, fmt.Errorf("populate volume at %s: %w", m.Target, err)
	}
	defer dst.Close()
	if err := copyTree(src, dst, "."); err != nil {
		return false, fmt.Errorf("populate volume at %s: %w", m.Target, err)
	}
	// The volume's root takes the ownership and mode of the image directory.
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		_ = os.Lchown(m.Source, int(sys.Uid), int(sys.Gid))
	}
	_ = os.Chmod(m.Source, st.Mode().Perm())
	return true, nil
}

func copyTree(src, dst *os.Root, dir string) error {
	f, err := src.Open(dir)
	if err != nil {
		return err
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := path.Join(dir, e.Name())
		info, err := src.Lstat(name)
		if err != nil {
			return err
		}
		switch mode := info.Mode(); {
		case mode.IsDir():
			if err := dst.Mkdir(name, mode.Perm()); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			if err := copyTree(src, dst, name); err != nil {
				return err
			}
		case mode&fs.ModeSymlink != 0:
			target, err := src.Readlink(name)
			if err != nil {
				return err
			}
			if err := dst.Symlink(target, name); err != nil {
				return err
			}
		case mode.IsRegular():
			if err := copyFile(src, dst, name, mode.Perm()); err != nil {
				return err
			}
		default:
			continue // devices, sockets, fifos: not volume content
		}
		if sys, ok := info.Sys().(*syscall.Stat_t); ok {
			if err := dst.Lchown(name, int(sys.Uid), int(sys.Gid)); err != nil {
				return err
			}
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			if err := dst.Chmod(name, info.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
				return err
			}
		}
	}
	return nil
}

func copyFile(src, dst *os.Root, name string, perm fs.FileMode) error {
	in, err := src.Open(name)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := dst.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// setupDev mounts a minimal /dev: a tmpfs with the standard character
// devices, devpts, shm and mqueue, and the console when there is a tty.
func setupDev(root *os.Root, c *InitConfig, sock int) error {
	if err := mountOn(root, "/dev", true, "tmpfs", "tmpfs", syscall.MS_NOSUID|syscall.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return err
	}
	dev, err := root.OpenFile("dev", os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("open /dev: %w", err)
	}
	defer dev.Close()
	dfd := int(dev.Fd())
	for _, d := range []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}} {
		if err := syscall.Mknodat(dfd, d.name, syscall.S_IFCHR|0o666, int(mkdev(d.major, d.minor))); err != nil {
			return fmt.Errorf("mknod /dev/%s: %w", d.name, err)
		}
	}
	for _, l := range [][2]string{
		{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"}, {"/proc/kcore", "core"}, {"pts/ptmx", "ptmx"},
	} {
		if err := symlinkat(l[0], dfd, l[1]); err != nil {
			return fmt.Errorf("symlink /dev/%s: %w", l[1], err)
		}
	}
	for _, d := range []string{"pts", "shm", "mqueue"} {
		if err := syscall.Mkdirat(dfd, d, 0o755); err != nil {
			return fmt.Errorf("mkdir /dev/%s: %w", d, err)
		}
	}
	sub := func(name string) string { return fdPath(dfd) + "/" + name }
	if err := syscall.Mount("devpts", sub("pts"), "devpts", syscall.MS_NOSUID|syscall.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"); err != nil {
		return fmt.Errorf("mount /dev/pts: %w", err)
	}
	if err := syscall.Mount("shm", sub("shm"), "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "mode=1777,size=65536k"); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	if err := syscall.Mount("mqueue", sub("mqueue"), "mqueue", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /dev/mqueue: %w", err)
	}
	if !c.Proc.Tty {
		return nil
	}
	master, slave, n, err := openPty(dfd, "pts/ptmx")
	if err != nil {
		return err
	}
	defer syscall.Close(master)
	cf, err := syscall.Openat(dfd, "console", syscall.O_CREAT|syscall.O_RDONLY|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		syscall.Close(slave)
		return fmt.Errorf("create /dev/console: %w", err)
	}
	syscall.Close(cf)
	if err := syscall.Mount(sub("pts/"+strconv.Itoa(int(n))), sub("console"), "", syscall.MS_BIND, ""); err != nil {
		syscall.Close(slave)
		return fmt.Errorf("mount /dev/console: %w", err)
	}
	if err := sendJSON(sock, syncMsg{Type: "pty"}, master); err != nil {
		syscall.Close(slave)
		return fmt.Errorf("send pty: %w", err)
	}
	return useTerminal(slave)
}

// pivotRoot makes rootfs the root of this mount namespace and detaches the
// old root, so that no host mount stays reachable (runc's pivot_root(".", ".")).
func pivotRoot(rootfs string) error {
	oldroot, err := syscall.Open("/", syscall.O_DIRECTORY|syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	defer syscall.Close(oldroot)
	newroot, err := syscall.Open(rootfs, syscall.O_DIRECTORY|syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	defer syscall.Close(newroot)
	if err := syscall.Fchdir(newroot); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := syscall.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", rootfs, err)
	}
	if err := syscall.Fchdir(oldroot); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := syscall.Mount("", ".", "", syscall.MS_SLAVE|syscall.MS_REC, ""); err != nil {
		return fmt.Errorf("pivot_root: make old root rslave: %w", err)
	}
	if err := syscall.Unmount(".", syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("pivot_root: detach old root: %w", err)
	}
	if err := syscall.Chdir("/"); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	return nil
}

// finishRootfs runs after pivot_root: masked and read-only paths, then the
// read-only root.
func finishRootfs(c *InitConfig) error {
	for _, p := range maskedPaths {
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		if st.IsDir() {
			err = syscall.Mount("tmpfs", p, "tmpfs", syscall.MS_RDONLY, "size=0")
		} else {
			err = syscall.Mount("/dev/null", p, "", syscall.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	for _, p := range readonlyPaths {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := syscall.Mount(p, p, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", p, err)
		}
		if err := remountReadOnlyPath(p, p); err != nil {
			return err
		}
	}
	if c.ReadOnlyRootfs {
		if err := syscall.Mount("", "/", "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("remount / read-only: %w", err)
		}
	}
	return nil
}
