package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"berth.dev/berth/engine"
)

// sendTimeout bounds how long a publisher waits for one subscriber whose
// queue is full.
const sendTimeout = 100 * time.Millisecond

// Dir returns the event socket directory of a data root.
func Dir(root string) string { return path.Join(root, "run", "events") }

func procPath(dirfd int, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
}

// Publish sends ev to every current subscriber of the data root. A zero Time
// is set to now.
func Publish(root string, ev engine.Event) error {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	dirfd, err := syscall.Open(Dir(root), syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // nobody ever subscribed
		}
		return fmt.Errorf("publish event: %w", err)
	}
	dir := os.NewFile(uintptr(dirfd), "events")
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("publish event: %w", err)
	}
	var subs []string
	for _, name := range names {
		if strings.HasSuffix(name, ".sock") {
			subs = append(subs, name)
		}
	}
	if len(subs) == 0 {
		return nil
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("publish event: %w", err)
	}
	sock, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("publish event: %w", err)
	}
	defer syscall.Close(sock)
	tv := syscall.NsecToTimeval(sendTimeout.Nanoseconds())
	_ = syscall.SetsockoptTimeval(sock, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv)
	for _, name := range subs {
		err := syscall.Sendto(sock, data, 0, &syscall.SockaddrUnix{Name: procPath(dirfd, name)})
		if err == syscall.ECONNREFUSED || err == syscall.ENOENT {
			_ = syscall.Unlinkat(dirfd, name) // its subscriber is gone
		}
	}
	return nil
}

// Subscribe returns a channel of the events published on root from now on,
// closed when ctx ends.
func Subscribe(ctx context.Context, root string) (<-chan engine.Event, error) {
	done := ctx.Done()
	dir := Dir(root)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	dirfd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	// Unique per subscription: bind fails on an existing name, and the
	// next nanosecond is tried.
	name := ""
	sock, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		syscall.Close(dirfd)
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	for attempt := 0; ; attempt++ {
		name = strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ".sock"
		err := syscall.Bind(sock, &syscall.SockaddrUnix{Name: procPath(dirfd, name)})
		if err == nil {
			break
		}
		if err != syscall.EADDRINUSE || attempt == 10 {
			syscall.Close(sock)
			syscall.Close(dirfd)
			return nil, fmt.Errorf("subscribe: bind: %w", err)
		}
	}
	_ = syscall.SetsockoptInt(sock, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1<<20)
	f := os.NewFile(uintptr(sock), name) // non-blocking: reads park in the netpoller
	ch := make(chan engine.Event, 64)
	stop := make(chan struct{})
	go func() {
		select {
		case <-done:
		case <-stop:
		}
		f.Close()
		_ = syscall.Unlinkat(dirfd, name)
		syscall.Close(dirfd)
	}()
	go func() {
		defer close(ch)
		defer close(stop)
		buf := make([]byte, 64<<10)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			var ev engine.Event
			if json.Unmarshal(buf[:n], &ev) != nil {
				continue
			}
			select {
			case ch <- ev:
			case <-done:
				return
			}
		}
	}()
	return ch, nil
}
