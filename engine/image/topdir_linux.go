package image

import "golang.org/x/sys/unix"

// fsTopDirFl is FS_TOPDIR_FL (chattr +T), missing from x/sys/unix.
const fsTopDirFl = 0x00020000

// markTopDir tells ext2/3/4's Orlov allocator that the subdirectories of
// dir are unrelated hierarchies, as the store's parts and its snapshots
// are: it then spreads them over block groups with free inodes rather than
// packing them into dir's own group. Besides locality, this keeps a pull's
// thousands of new inodes out of a group where many were freed a moment
// ago (a data root next to busy temporary directories): ext4 without a
// journal checks every inode freed in the last half minute before it
// reuses one, and in such a group a new file costs hundreds of
// microseconds instead of ten. A hint only: any error (another filesystem)
// is ignored.
func markTopDir(dir string) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil || flags&fsTopDirFl != 0 {
		return
	}
	unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|fsTopDirFl))
}
