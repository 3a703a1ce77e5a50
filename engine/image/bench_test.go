package image_test

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/enginetest"
)

// BenchmarkPullLarge pulls a 5-layer, 200 MB image from an in-process
// registry into a fresh store (bench/image.go measures the whole CLI).
func BenchmarkPullLarge(b *testing.B) {
	var layers [][]byte
	total := 0
	for i := range 5 {
		l := enginetest.SyntheticLayer(uint64(i+1), 40<<20)
		layers = append(layers, l)
		total += len(l)
	}
	b.SetBytes(int64(total))
	benchPull(b, "bench/large", layers)
}

// benchPull pushes an image of layers to a registry as repo and times its
// pull into a fresh store.
func benchPull(b *testing.B, repo string, layers [][]byte) {
	reg := startRegistry(b)
	img := buildImage(b, layers, "gzip", false, amd64, nil)
	reg.push(b, repo, "latest", img)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		s := openStore(b)
		b.StartTimer()
		if _, err := s.Pull(b.Context(), reg.addr+"/"+repo, engine.PullOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPullBusybox pulls a one-layer image of the static busybox and a
// hard link per applet, as Docker's busybox image is, into a fresh store
// each time (bench/image.go measures the whole CLI).
func BenchmarkPullBusybox(b *testing.B) {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		b.Skipf("needs the static busybox at /bin/busybox (busybox-static): %v", err)
	}
	list, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		b.Fatal(err)
	}
	mod := time.Unix(1700000000, 0)
	var l bytes.Buffer
	tw := tar.NewWriter(&l)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "bin/", Mode: 0o755, ModTime: mod})
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb)), ModTime: mod})
	tw.Write(bb)
	for _, a := range strings.Fields(string(list)) {
		if a != "busybox" {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeLink, Name: "bin/" + a, Linkname: "bin/busybox", ModTime: mod})
		}
	}
	tw.Close()
	benchPull(b, "bench/busybox", [][]byte{l.Bytes()})
}
