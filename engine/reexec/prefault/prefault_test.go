package prefault

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestReadOnlySegments checks the segments against the kernel's view of
// the running test binary: each is a read-only mapping of the binary.
func TestReadOnlySegments(t *testing.T) {
	type span struct{ lo, hi uintptr }
	var maps []span
	var perms []string
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		lo, hi, _ := strings.Cut(fields[0], "-")
		l, _ := strconv.ParseUint(lo, 16, 64)
		h, _ := strconv.ParseUint(hi, 16, 64)
		maps = append(maps, span{uintptr(l), uintptr(h)})
		perms = append(perms, fields[1])
	}
	var got []span
	ReadOnlySegments(func(start, length uintptr) { got = append(got, span{start, start + length}) })
	if len(got) < 2 {
		t.Fatalf("segments %x: want code and read-only data", got)
	}
	for _, s := range got {
		found := false
		for i, m := range maps {
			if s.lo >= m.lo && s.lo < m.hi {
				found = true
				if strings.Contains(perms[i], "w") {
					t.Errorf("segment %x-%x is in a writable mapping %s", s.lo, s.hi, perms[i])
				}
			}
		}
		if !found {
			t.Errorf("segment %x-%x is not mapped", s.lo, s.hi)
		}
	}
	if raceEnabled {
		return
	}
	if n := testing.AllocsPerRun(10, func() { ReadOnlySegments(func(uintptr, uintptr) {}) }); n != 0 {
		t.Errorf("ReadOnlySegments allocates %v times, want 0", n)
	}
}
