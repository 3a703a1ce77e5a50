package state

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWriteJSONRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "rec.json")
	type rec struct{ A int }
	var got rec
	if err := ReadJSON(p, &got); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadJSON of a missing file: %v, want fs.ErrNotExist", err)
	}
	for i := range 3 {
		if err := WriteJSON(p, rec{A: i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ReadJSON(p, &got); err != nil || got.A != 2 {
		t.Fatalf("ReadJSON = %+v, %v; want {A:2}", got, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temp files left behind: %v", ents)
	}
}

// Concurrent writers never produce a torn file: every read parses.
func TestWriteFileAtomicUnderConcurrency(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	big := make([]byte, 1<<16)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := append([]byte(nil), big...)
			for i := range b {
				b[i] = byte('a' + w)
			}
			for range 20 {
				if err := WriteFile(p, b, 0o600); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	go func() { wg.Wait(); close(stop) }()
	for {
		select {
		case <-stop:
			return
		default:
		}
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != len(big) {
			t.Fatalf("torn read: %d bytes", len(data))
		}
		for _, c := range data {
			if c != data[0] {
				t.Fatal("torn read: mixed content")
			}
		}
	}
}

func TestLockExcludesAndHonoursContext(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	l, err := Acquire(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := TryAcquire(p); err != nil || ok {
		t.Fatalf("TryAcquire while held = %v, %v; want not ok", ok, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := Acquire(ctx, p); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire while held = %v, want deadline exceeded", err)
	}
	if _, err := AcquireShared(ctx, p); err == nil {
		t.Fatal("shared lock granted while an exclusive one is held")
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, ok, err := TryAcquire(p)
	if err != nil || !ok {
		t.Fatalf("TryAcquire after release = %v, %v", ok, err)
	}
	_ = l2.Release()
	_ = l2.Release() // idempotent
}

// A lock held by a process that dies is released by the kernel.
func TestLockReleasedWhenHolderDies(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	// flock(1) is util-linux; fall back to skipping where it is absent.
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) not installed")
	}
	cmd := exec.Command("flock", "--close", p, "sleep", "60") // --close: the lock stays with flock, not the sleep
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, ok, err := TryAcquire(p)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		_ = l.Release()
		if time.Now().After(deadline) {
			t.Fatal("child never took the lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	l, err := Acquire(ctx, p)
	if err != nil {
		t.Fatalf("lock not released after holder was killed: %v", err)
	}
	_ = l.Release()
}

func TestProcessIdentity(t *testing.T) {
	self, err := ProcessOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !self.Alive() {
		t.Fatal("own process not alive")
	}
	reused := self
	reused.StartTime++
	if reused.Alive() {
		t.Fatal("a different start time must not count as the same process")
	}
	rebooted := self
	rebooted.BootID = "other-boot"
	if rebooted.Alive() {
		t.Fatal("a different boot must not count as the same process")
	}

	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child, err := ProcessOf(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	_ = cmd.Process.Kill()
	// Unreaped, the child is a zombie: not alive.
	deadline := time.Now().Add(5 * time.Second)
	for child.Alive() {
		if time.Now().After(deadline) {
			t.Fatal("killed child still alive")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = cmd.Wait()
	if child.Alive() {
		t.Fatal("reaped child alive")
	}
	if _, err := ProcessOf(cmd.Process.Pid); err == nil {
		// The pid may have been reused already; only a missing process is an error.
		t.Log("pid reused by another process")
	}
}

// TestReadFileAsOSReadFile checks readFile against os.ReadFile: contents of
// empty, small, large and /proc files, and the errors.
func TestReadFileAsOSReadFile(t *testing.T) {
	dir := t.TempDir()
	big := make([]byte, 100<<10)
	for i := range big {
		big[i] = byte('a' + i%26)
	}
	files := map[string][]byte{"empty": {}, "small": []byte(`{"a":1}`), "page": big[:2048], "big": big}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{
		filepath.Join(dir, "empty"), filepath.Join(dir, "small"), filepath.Join(dir, "page"), filepath.Join(dir, "big"),
		"/proc/self/status", filepath.Join(dir, "missing"), dir,
	} {
		want, wantErr := os.ReadFile(p)
		got, err := readFile(p)
		if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Errorf("readFile(%s) error = %v, want %v", p, err, wantErr)
			continue
		}
		if err == nil && p != "/proc/self/status" && string(got) != string(want) {
			t.Errorf("readFile(%s) = %d bytes, want %d", p, len(got), len(want))
		}
		if err == nil && p == "/proc/self/status" && (len(got) < 100 || string(got[:5]) != "Name:") {
			t.Errorf("readFile(%s) = %q", p, got)
		}
	}
	if _, err := readFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("readFile of a missing file = %v, want fs.ErrNotExist", err)
	}
}

// TestStatFields checks the parse of /proc/PID/stat against the fields as
// split by strings.Fields, for this process and for init.
func TestStatFields(t *testing.T) {
	for _, pid := range []int{os.Getpid(), 1} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		start, state, err := stat(pid)
		if err != nil {
			t.Fatal(err)
		}
		if want := fields[19]; fmt.Sprint(start) != want || string(state) != fields[0] {
			t.Errorf("stat(%d) = start %d, state %c; want %s, %s", pid, start, state, want, fields[0])
		}
	}
}
