package enginetest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// SyntheticLayer makes an uncompressed layer tar of about size bytes, the
// same for the same seed: many files, half of them text (compressible) and
// half random bytes (not), in nested directories, as a real image layer is.
// Benchmarks pull images made of these.
func SyntheticLayer(seed uint64, size int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	words := strings.Fields("berth container image layer registry overlay snapshot digest manifest index config network volume reconcile apply plan watch kernel cgroup namespace mount process signal")
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	mod := time.Unix(1700000000, 0)
	n := 0
	for d := 0; b.Len() < size; d++ {
		dir := fmt.Sprintf("usr/lib/pkg%d/sub%d/", seed, d)
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: mod})
		for f := 0; f < 32 && b.Len() < size; f++ {
			// Sizes from 1 KiB to 1 MiB, skewed small like real trees.
			fsize := 1024 << rng.IntN(11)
			data := make([]byte, fsize)
			if n%2 == 0 {
				for i := range data {
					data[i] = byte(rng.Uint32())
				}
			} else {
				var t bytes.Buffer
				for t.Len() < fsize {
					t.WriteString(words[rng.IntN(len(words))])
					t.WriteByte(" \n"[rng.IntN(2)])
				}
				copy(data, t.Bytes())
			}
			_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%sfile%d", dir, f), Mode: 0o644, Size: int64(fsize), ModTime: mod})
			_, _ = tw.Write(data)
			n++
		}
	}
	_ = tw.Close()
	return b.Bytes()
}
