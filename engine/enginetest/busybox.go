package enginetest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"berth.dev/berth/engine"
)

// BusyboxApplets are the commands of the busybox test image, each a symlink
// to /bin/busybox.
var BusyboxApplets = []string{
	"sh", "ash", "sleep", "true", "false", "cat", "echo", "ls", "id", "hostname", "ps", "grep", "mount",
	"umount", "touch", "mkdir", "rm", "head", "tail", "wc", "env", "pwd", "kill", "dd", "yes", "tr",
	"printf", "test", "[", "stat", "readlink", "seq", "date", "uname", "whoami", "nproc", "df", "top",
	"find", "xargs", "sed", "awk", "cut", "sort", "uniq", "chmod", "chown", "ln", "cp", "mv", "tee", "wget",
	"ip", "ping", "nc", "hexdump", "od", "base64", "md5sum", "sha256sum", "timeout", "nohup", "setsid",
	"unshare", "nsenter", "mknod", "mkfifo", "basename", "dirname", "expr", "usleep", "watch", "free",
}

// BusyboxChanges is the image config of the busybox test image.
var BusyboxChanges = []string{
	`CMD ["sh"]`,
	"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
}

// BusyboxTar builds a root filesystem tar from the host's static busybox
// (/bin/busybox, Debian's busybox-static): /bin with an applet symlink per
// command, /etc/passwd and /etc/group with root, nobody and a user alice
// (1000, also in group staff), /tmp, /root, /home/alice and /data/seed.
func BusyboxTar() ([]byte, error) {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, fmt.Errorf("busybox: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	dir := func(name string, mode int64, uid int) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: now, Uid: uid, Gid: uid})
	}
	file := func(name string, mode int64, data []byte) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: now})
		_, _ = tw.Write(data)
	}
	for _, d := range []string{"bin/", "etc/", "root/", "data/", "home/", "usr/", "usr/bin/", "var/"} {
		dir(d, 0o755, 0)
	}
	dir("tmp/", 0o1777, 0)
	dir("home/alice/", 0o755, 1000)
	file("bin/busybox", 0o755, bb)
	for _, a := range BusyboxApplets {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: now})
	}
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\nalice:x:1000:\nstaff:x:50:alice\n"))
	file("data/seed", 0o644, []byte("from the image\n"))
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ImportBusybox imports the busybox test image into e as ref and returns
// ref. It skips the test when the host has no /bin/busybox (fails under
// BERTH_TEST_ROOT=1).
func ImportBusybox(t testing.TB, ctx context.Context, e engine.Engine, ref string) string {
	t.Helper()
	data, err := BusyboxTar()
	if err != nil {
		if os.Getenv(EnvRoot) == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if _, err := e.Images().Import(ctx, bytes.NewReader(data), ref, engine.ImportOptions{Changes: BusyboxChanges}); err != nil {
		t.Fatalf("import busybox: %v", err)
	}
	return ref
}
