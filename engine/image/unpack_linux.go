package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Whiteout names of the OCI layer format.
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
	// overlayOpaque marks a directory whose lower-layer contents are hidden.
	overlayOpaque = "trusted.overlay.opaque"
)

// holeUnit is the granularity at which zero runs are skipped.
const holeUnit = 32 << 10

// UnpackError is a layer entry refused by the unpacker. It names the entry
// so that a person can tell what in the layer was wrong.
type UnpackError struct {
	Entry  string // the tar entry's name as the layer gave it
	Reason string
}

func (e *UnpackError) Error() string {
	return fmt.Sprintf("layer entry %q: %s", e.Entry, e.Reason)
}

// unpackStats summarize an unpacked layer.
type unpackStats struct {
	Entries int
	Bytes   int64 // regular file content
	Skipped int   // device nodes and unknown entry types
}

// unpacker writes one layer's tar stream into a snapshot directory. Every
// path is resolved through an os.Root on the snapshot, and the final
// component is created with an *at call relative to the parent directory's
// descriptor, never following a symbolic link.
type unpacker struct {
	root   *os.Root
	log    *slog.Logger
	isRoot bool
	buf    []byte
	// uid and gid are the owner of what this process creates.
	uid, gid int

	// cached parent directory: consecutive files of one directory are the
	// common case. Entries only ever change children of their parent, never
	// how the parent's own path resolves, so the cache stays valid.
	cacheDir string
	cacheF   *os.File
	// cacheGid is the group new entries of the cached directory get: its
	// own when it is set-group-ID, ours otherwise; -1 when unknown.
	cacheGid int

	dirs  []dirTimes
	stats unpackStats
}

type dirTimes struct {
	name         string
	atime, mtime time.Time
}

// unpackTar unpacks the tar stream r into dir, which must exist and be
// empty.
func unpackTar(ctx context.Context, dir string, r io.Reader, log *slog.Logger) (unpackStats, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return unpackStats{}, fmt.Errorf("unpack: %w", err)
	}
	defer root.Close()
	u := &unpacker{
		root:   root,
		log:    log,
		isRoot: os.Geteuid() == 0,
		buf:    getBuffer(),
		uid:    os.Geteuid(),
		gid:    os.Getegid(),
	}
	defer putBuffer(u.buf)
	defer u.dropCache()
	tr := tar.NewReader(r)
	for {
		if u.stats.Entries%256 == 0 {
			if err := ctx.Err(); err != nil {
				return u.stats, fmt.Errorf("unpack: %w", context.Cause(ctx))
			}
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return u.stats, fmt.Errorf("unpack: read tar: %w", err)
		}
		u.stats.Entries++
		if err := u.entry(hdr, tr); err != nil {
			return u.stats, fmt.Errorf("unpack: %w", err)
		}
	}
	// Directory times last: creating their children changed them.
	for i := len(u.dirs) - 1; i >= 0; i-- {
		d := u.dirs[i]
		if err := u.setTimes(d.name, d.atime, d.mtime); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return u.stats, fmt.Errorf("unpack: %w", err)
		}
	}
	return u.stats, nil
}

// cleanEntryPath turns a tar entry name into a clean path relative to the
// layer root ("." for the root itself). A leading "/" is dropped; a ".."
// that would climb above the root is refused.
func cleanEntryPath(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", errors.New("name contains a NUL byte")
	}
	depth := 0
	for rest, more := name, true; more; {
		var c string
		c, rest, more = strings.Cut(rest, "/")
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return "", errors.New("path climbs out of the layer root")
			}
		default:
			depth++
		}
	}
	// Clean returns an already clean name as it is, without allocating.
	p := strings.TrimPrefix(path.Clean(name), "/")
	if p == "" {
		return ".", nil
	}
	return p, nil
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	name, err := cleanEntryPath(hdr.Name)
	if err != nil {
		return &UnpackError{Entry: hdr.Name, Reason: err.Error()}
	}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}

	if strings.HasPrefix(base, whiteoutPrefix) {
		switch {
		case base == whiteoutOpaque:
			return u.opaque(hdr, dir)
		case strings.HasPrefix(base, whiteoutMeta):
			// aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content.
			u.log.Debug("skipping whiteout metadata entry", "entry", hdr.Name)
			return nil
		default:
			return u.whiteout(hdr, dir, strings.TrimPrefix(base, whiteoutPrefix))
		}
	}

	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return &UnpackError{Entry: hdr.Name, Reason: "the layer root must be a directory"}
		}
		return u.directory(hdr, ".", ".", ".")
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		return u.directory(hdr, name, dir, base)
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		return u.regular(hdr, r, name, dir, base)
	case tar.TypeSymlink:
		return u.symlink(hdr, name, dir, base)
	case tar.TypeLink:
		return u.hardlink(hdr, name)
	case tar.TypeFifo:
		return u.fifo(hdr, name, dir, base)
	case tar.TypeChar, tar.TypeBlock:
		// Policy (doc.go): device nodes are not created.
		u.stats.Skipped++
		u.log.Debug("skipping device node", "entry", hdr.Name, "major", hdr.Devmajor, "minor", hdr.Devminor)
		return nil
	case tar.TypeXGlobalHeader:
		return nil
	default:
		u.stats.Skipped++
		u.log.Debug("skipping unsupported tar entry", "entry", hdr.Name, "type", string(hdr.Typeflag))
		return nil
	}
}

// parent returns the directory dir (relative to the root, "." for the root),
// creating missing directories as root-owned 0755 like Docker does for
// directories a layer implies without listing them.
func (u *unpacker) parent(entry, dir string) (*os.File, error) {
	if u.cacheF != nil && u.cacheDir == dir {
		return u.cacheF, nil
	}
	u.dropCache()
	f, err := u.root.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if err := u.root.MkdirAll(dir, 0o755); err != nil {
			return nil, &UnpackError{Entry: entry, Reason: fmt.Sprintf("create parent directory: %v", err)}
		}
		f, err = u.root.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	}
	if err != nil {
		return nil, &UnpackError{Entry: entry, Reason: fmt.Sprintf("open parent directory: %v", err)}
	}
	u.cacheDir, u.cacheF, u.cacheGid = dir, f, -1
	var st unix.Stat_t
	if u.isRoot && unix.Fstat(int(f.Fd()), &st) == nil {
		u.cacheGid = u.gid
		if st.Mode&unix.S_ISGID != 0 {
			u.cacheGid = int(st.Gid)
		}
	}
	return f, nil
}

func (u *unpacker) dropCache() {
	if u.cacheF != nil {
		u.cacheF.Close()
		u.cacheF, u.cacheDir = nil, ""
	}
}

// ownedAsIs reports whether an entry just created in the cached parent
// directory already has the owner the header asks for, so that chown can
// be skipped: a new file belongs to our user and to our group, or to the
// directory's group when that is set-group-ID.
func (u *unpacker) ownedAsIs(hdr *tar.Header) bool {
	return u.cacheGid >= 0 && hdr.Uid == u.uid && hdr.Gid == u.cacheGid
}

// clear removes what exists at dir/base, unless it is a directory and
// keepDir is set. It reports whether a directory was kept.
func (u *unpacker) clear(entry string, pf *os.File, name, base string, keepDir bool) (kept bool, err error) {
	var st unix.Stat_t
	err = unix.Fstatat(int(pf.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, &UnpackError{Entry: entry, Reason: fmt.Sprintf("stat existing: %v", err)}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if keepDir {
			return true, nil
		}
		// The cached parent is dir, which this does not change.
		if err := u.root.RemoveAll(name); err != nil {
			return false, &UnpackError{Entry: entry, Reason: fmt.Sprintf("replace directory: %v", err)}
		}
		return false, nil
	}
	if err := unix.Unlinkat(int(pf.Fd()), base, 0); err != nil {
		return false, &UnpackError{Entry: entry, Reason: fmt.Sprintf("replace existing: %v", err)}
	}
	return false, nil
}

// create makes a new non-directory entry: mk creates base in the parent
// directory it is given and fails with EEXIST when something is there
// already (an earlier entry of the layer: the later one wins, as in tar),
// in which case that is removed and mk runs again. Trying first saves a
// stat per entry in the usual case of a name seen once.
func (u *unpacker) create(hdr *tar.Header, name, dir, base string, mk func(pf *os.File) error) (*os.File, error) {
	pf, err := u.parent(hdr.Name, dir)
	if err != nil {
		return nil, err
	}
	err = mk(pf)
	if errors.Is(err, fs.ErrExist) {
		if _, err := u.clear(hdr.Name, pf, name, base, false); err != nil {
			return nil, err
		}
		err = mk(pf)
	}
	return pf, err
}

func (u *unpacker) directory(hdr *tar.Header, name, dir, base string) error {
	if name == "." {
		f, err := u.root.OpenFile(".", os.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return &UnpackError{Entry: hdr.Name, Reason: err.Error()}
		}
		defer f.Close()
		if err := u.attrs(hdr, int(f.Fd()), false); err != nil {
			return err
		}
		if u.cacheDir == "." {
			// Its set-group-ID bit or group may have changed. (Any other
			// directory entry first caches its parent instead.)
			u.dropCache()
		}
		u.dirs = append(u.dirs, dirTimes{name: ".", atime: hdr.AccessTime, mtime: hdr.ModTime})
		return nil
	}
	pf, err := u.parent(hdr.Name, dir)
	if err != nil {
		return err
	}
	created := true
	err = unix.Mkdirat(int(pf.Fd()), base, 0o700)
	if errors.Is(err, unix.EEXIST) {
		kept, err := u.clear(hdr.Name, pf, name, base, true)
		if err != nil {
			return err
		}
		created = false
		if !kept {
			created = true
			if err := unix.Mkdirat(int(pf.Fd()), base, 0o700); err != nil {
				return &UnpackError{Entry: hdr.Name, Reason: fmt.Sprintf("mkdir: %v", err)}
			}
		}
	} else if err != nil {
		return &UnpackError{Entry: hdr.Name, Reason: fmt.Sprintf("mkdir: %v", err)}
	}
	owned := created && u.ownedAsIs(hdr)
	dfd, err := unix.Openat(int(pf.Fd()), base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &UnpackError{Entry: hdr.Name, Reason: fmt.Sprintf("open directory: %v", err)}
	}
	defer unix.Close(dfd)
	if err := u.attrs(hdr, dfd, owned); err != nil {
		return err
	}
	u.dirs = append(u.dirs, dirTimes{name: name, atime: hdr.AccessTime, mtime: hdr.ModTime})
	return nil
}

func (u *unpacker) regular(hdr *tar.Header, r io.Reader, name, dir, base string) error {
	var fd int
	pf, err := u.create(hdr, name, dir, base, func(pf *os.File) (err error) {
		fd, err = unix.Openat(int(pf.Fd()), base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		return entryError(hdr, "create", err)
	}
	f := os.NewFile(uintptr(fd), name)
	n, err := u.copyFile(f, r)
	if err == nil && n != hdr.Size {
		err = fmt.Errorf("wrote %d of %d bytes", n, hdr.Size)
	}
	if err == nil {
		err = u.attrs(hdr, fd, u.ownedAsIs(hdr))
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		var ue *UnpackError
		if errors.As(err, &ue) {
			return err
		}
		return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
	}
	u.stats.Bytes += n
	return u.setTimesAt(hdr.Name, pf, base, hdr.AccessTime, hdr.ModTime)
}

// copyFile copies r to f; runs of zeros become holes.
func (u *unpacker) copyFile(f *os.File, r io.Reader) (int64, error) {
	var total int64
	hole := false
	for {
		// Fill the buffer; unlike io.ReadFull this keeps a truncated stream's
		// io.ErrUnexpectedEOF apart from the normal end of the entry.
		n := 0
		var rerr error
		for n < len(u.buf) && rerr == nil {
			var k int
			k, rerr = r.Read(u.buf[n:])
			n += k
		}
		chunk := u.buf[:n]
		for len(chunk) > 0 {
			// Write the longest non-zero run, skip the longest zero run.
			i := 0
			for i < len(chunk) {
				end := min(i+holeUnit, len(chunk))
				if end-i == holeUnit && bytesEqualZero(chunk[i:end]) {
					break
				}
				i = end
			}
			if i > 0 {
				if _, err := f.Write(chunk[:i]); err != nil {
					return total, err
				}
				total += int64(i)
				chunk = chunk[i:]
				hole = false
			}
			j := 0
			for j+holeUnit <= len(chunk) && bytesEqualZero(chunk[j:j+holeUnit]) {
				j += holeUnit
			}
			if j > 0 {
				if _, err := f.Seek(int64(j), io.SeekCurrent); err != nil {
					return total, err
				}
				total += int64(j)
				chunk = chunk[j:]
				hole = true
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return total, fmt.Errorf("read layer: %w", rerr)
		}
	}
	if hole {
		if err := f.Truncate(total); err != nil {
			return total, err
		}
	}
	return total, nil
}

func (u *unpacker) symlink(hdr *tar.Header, name, dir, base string) error {
	if hdr.Linkname == "" || strings.IndexByte(hdr.Linkname, 0) >= 0 {
		return &UnpackError{Entry: hdr.Name, Reason: "symbolic link with an empty or invalid target"}
	}
	pf, err := u.create(hdr, name, dir, base, func(pf *os.File) error {
		return unix.Symlinkat(hdr.Linkname, int(pf.Fd()), base)
	})
	if err != nil {
		return entryError(hdr, "symlink", err)
	}
	fd := int(pf.Fd())
	if err := u.chownAt(hdr, fd, base); err != nil {
		return err
	}
	for k, v := range xattrs(hdr) {
		// Symbolic links take no user.* xattrs; trusted.* and security.*
		// are rare but kept when the kernel accepts them.
		if err := unix.Lsetxattr("/proc/self/fd/"+strconv.Itoa(fd)+"/"+base, k, []byte(v), 0); err != nil {
			u.log.Debug("xattr on symbolic link not kept", "entry", hdr.Name, "xattr", k, "err", err)
		}
	}
	return u.setTimesAt(hdr.Name, pf, base, hdr.AccessTime, hdr.ModTime)
}

func (u *unpacker) hardlink(hdr *tar.Header, name string) error {
	target, err := cleanEntryPath(hdr.Linkname)
	if err != nil {
		return &UnpackError{Entry: hdr.Name, Reason: "hard link target " + strconv.Quote(hdr.Linkname) + ": " + err.Error()}
	}
	if target == "." {
		return &UnpackError{Entry: hdr.Name, Reason: "hard link to the layer root"}
	}
	if target == name {
		return nil
	}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	// Neither form follows a symbolic link as the target's final component.
	tdir, tbase := path.Split(target)
	if tdir = strings.TrimSuffix(tdir, "/"); tdir == "" {
		tdir = "."
	}
	_, err = u.create(hdr, name, dir, base, func(pf *os.File) error {
		if tdir == dir {
			// The common case (bin/sh -> bin/busybox): both names in the
			// directory already resolved inside the root.
			return unix.Linkat(int(pf.Fd()), tbase, int(pf.Fd()), base, 0)
		}
		// Link resolves both parents inside the root.
		return u.root.Link(target, name)
	})
	if err != nil {
		return entryError(hdr, fmt.Sprintf("hard link to %q", hdr.Linkname), err)
	}
	return nil
}

func (u *unpacker) fifo(hdr *tar.Header, name, dir, base string) error {
	pf, err := u.create(hdr, name, dir, base, func(pf *os.File) error {
		return unix.Mknodat(int(pf.Fd()), base, unix.S_IFIFO|0o600, 0)
	})
	if err != nil {
		return entryError(hdr, "mkfifo", err)
	}
	fd := int(pf.Fd())
	if err := u.chownAt(hdr, fd, base); err != nil {
		return err
	}
	if err := unix.Fchmodat(fd, base, uint32(hdr.Mode&0o7777), 0); err != nil {
		return &UnpackError{Entry: hdr.Name, Reason: fmt.Sprintf("chmod: %v", err)}
	}
	return u.setTimesAt(hdr.Name, pf, base, hdr.AccessTime, hdr.ModTime)
}

// whiteout records the deletion of dir/target as an overlayfs whiteout: a
// character device 0/0.
func (u *unpacker) whiteout(hdr *tar.Header, dir, target string) error {
	if target == "" || target == "." || target == ".." || strings.ContainsRune(target, '/') {
		return &UnpackError{Entry: hdr.Name, Reason: "whiteout of an invalid name " + strconv.Quote(target)}
	}
	name := path.Join(dir, target)
	_, err := u.create(hdr, name, dir, target, func(pf *os.File) error {
		return unix.Mknodat(int(pf.Fd()), target, unix.S_IFCHR, 0)
	})
	if err != nil {
		return entryError(hdr, "create overlay whiteout (whiteouts need root)", err)
	}
	return nil
}

// opaque marks dir as hiding the contents of the layers below it.
func (u *unpacker) opaque(hdr *tar.Header, dir string) error {
	f, err := u.parent(hdr.Name, dir)
	if err != nil {
		return err
	}
	if err := unix.Fsetxattr(int(f.Fd()), overlayOpaque, []byte("y"), 0); err != nil {
		return &UnpackError{Entry: hdr.Name, Reason: fmt.Sprintf("mark directory opaque: %v (needs root)", err)}
	}
	return nil
}

// attrs applies ownership, mode and xattrs to an open file or directory. The
// mode goes after chown, which clears setuid and setgid bits.
func (u *unpacker) attrs(hdr *tar.Header, fd int, owned bool) error {
	if u.isRoot && !owned {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return &UnpackError{Entry: hdr.Name, Reason: fmt.Sprintf("chown: %v", err)}
		}
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
		return &UnpackError{Entry: hdr.Name, Reason: fmt.Sprintf("chmod: %v", err)}
	}
	for k, v := range xattrs(hdr) {
		if err := unix.Fsetxattr(fd, k, []byte(v), 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) || (!u.isRoot && errors.Is(err, unix.EPERM)) {
				u.log.Debug("xattr not kept", "entry", hdr.Name, "xattr", k, "err", err)
				continue
			}
			return &UnpackError{Entry: hdr.Name, Reason: fmt.Sprintf("set xattr %s: %v", k, err)}
		}
	}
	return nil
}

func (u *unpacker) chownAt(hdr *tar.Header, dirfd int, base string) error {
	if !u.isRoot || u.ownedAsIs(hdr) {
		return nil
	}
	if err := unix.Fchownat(dirfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &UnpackError{Entry: hdr.Name, Reason: fmt.Sprintf("chown: %v", err)}
	}
	return nil
}

func (u *unpacker) setTimesAt(entry string, pf *os.File, base string, atime, mtime time.Time) error {
	if atime.IsZero() {
		atime = mtime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(int(pf.Fd()), base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &UnpackError{Entry: entry, Reason: fmt.Sprintf("set times: %v", err)}
	}
	return nil
}

// setTimes sets the times of name, re-resolving its parent through the root.
func (u *unpacker) setTimes(name string, atime, mtime time.Time) error {
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	if name == "." {
		dir, base = ".", "."
	}
	pf, err := u.root.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer pf.Close()
	return u.setTimesAt(name, pf, base, atime, mtime)
}

// entryError reports a failed step of creating an entry; errors that already
// name the entry pass through.
func entryError(hdr *tar.Header, step string, err error) error {
	var ue *UnpackError
	if errors.As(err, &ue) {
		return err
	}
	return &UnpackError{Entry: hdr.Name, Reason: fmt.Sprintf("%s: %v", step, err)}
}

// xattrs returns the extended attributes a tar header carries, without the
// overlayfs ones a layer must not forge.
func xattrs(hdr *tar.Header) map[string]string {
	var m map[string]string
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || strings.HasPrefix(name, "trusted.overlay.") || name == "" {
			continue
		}
		if m == nil {
			m = map[string]string{}
		}
		m[name] = v
	}
	return m
}
