package shim

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// trimText drops from this process the pages of the berth binary it only
// touched while starting: the code and read-only data of every package
// initializer the runtime ran (the berth command links hundreds of packages).
// The pages stay in the page cache, shared; the few the monitor's loop uses
// fault back in. Only read-only mappings are touched: discarding a private
// writable mapping would lose its modifications.
func trimText() {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	exe, _ := os.Readlink("/proc/self/exe")
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 6 || !strings.HasPrefix(fields[1], "r") || strings.Contains(fields[1], "w") {
			continue
		}
		if name := strings.Join(fields[5:], " "); name != exe && !strings.HasSuffix(exe, name) {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), syscall.MADV_DONTNEED)
	}
}
