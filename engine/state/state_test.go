package state

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
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
