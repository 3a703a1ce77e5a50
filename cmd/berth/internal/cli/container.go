package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container"
	"berth.dev/berth/engine/container/shim"
)

// withContainers runs fn with the engine's container runtime, closing the
// engine afterwards.
func (o *Options) withContainers(ctx context.Context, fn func(engine.Containers) error) error {
	e, err := o.Engine(ctx)
	if err != nil {
		return err
	}
	defer e.Close()
	return fn(e.Containers())
}

// runner is the part of the local runtime that berth run and start -a use
// to attach before the process starts.
type runner interface {
	Run(ctx context.Context, cfg engine.ContainerConfig, attach *engine.Streams) (engine.Container, func(context.Context) (container.Exit, error), error)
	StartAttach(ctx context.Context, ref string, s engine.Streams) (func(context.Context) (container.Exit, error), error)
}

// startExitCode maps a failed start to the exit code berth run returns, as
// Docker's: 127 for a missing command, 126 for one that cannot run, 125
// for anything else.
func startExitCode(err error) int {
	var ie *shim.InitError
	if errors.As(err, &ie) {
		return ie.ExitCode()
	}
	return 125
}

// terminal puts the terminal on in raw mode for an attached tty and returns
// the resize channel and the function that restores it.
func terminal(in io.Reader, out io.Writer) (resize chan engine.WindowSize, restore func()) {
	restore = func() {}
	inF, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(inF.Fd())) {
		return nil, restore
	}
	state, err := term.MakeRaw(int(inF.Fd()))
	if err != nil {
		return nil, restore
	}
	resize = make(chan engine.WindowSize, 4)
	size := func() {
		fd := int(inF.Fd())
		if f, ok := out.(*os.File); ok {
			fd = int(f.Fd())
		}
		if w, h, err := term.GetSize(fd); err == nil {
			select {
			case resize <- engine.WindowSize{Rows: uint16(h), Cols: uint16(w)}:
			default:
			}
		}
	}
	size()
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-winch:
				size()
			case <-done:
				return
			}
		}
	}()
	return resize, func() {
		signal.Stop(winch)
		close(done)
		_ = term.Restore(int(inF.Fd()), state)
	}
}

// forwardSignals sends the signals berth receives to the container until
// the returned function is called (berth run in the foreground, without a
// tty: Docker's --sig-proxy).
func forwardSignals(cs engine.Containers, id string) (stop func()) {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-ch:
				sig := s.(syscall.Signal)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = cs.Kill(ctx, id, strconv.Itoa(int(sig)))
				cancel()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// containerStatus is the STATUS column of ps: "Up 3 minutes", "Exited (0)
// 2 seconds ago"...
func containerStatus(s engine.ContainerState, now time.Time) string {
	switch s.Status {
	case engine.StatusRunning:
		st := "Up " + humanDuration(now.Sub(s.StartedAt))
		if s.Health != nil {
			st += " (" + s.Health.Status + ")"
		}
		return st
	case engine.StatusExited:
		return fmt.Sprintf("Exited (%d) %s ago", s.ExitCode, humanDuration(now.Sub(s.FinishedAt)))
	case engine.StatusRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", s.ExitCode, humanDuration(now.Sub(s.FinishedAt)))
	case engine.StatusCreated:
		return "Created"
	case engine.StatusDead:
		return "Dead"
	case engine.StatusRemoving:
		return "Removal In Progress"
	}
	return string(s.Status)
}

func humanDuration(d time.Duration) string {
	switch s := d.Seconds(); {
	case s < 1:
		return "Less than a second"
	case s < 60:
		return fmt.Sprintf("%d seconds", int(s))
	case d.Minutes() < 60:
		if int(d.Minutes()) == 1 {
			return "About a minute"
		}
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	case d.Hours() < 48:
		if int(d.Hours()) == 1 {
			return "About an hour"
		}
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

func truncID(id string, full bool) string {
	if full || len(id) <= 12 {
		return id
	}
	return id[:12]
}

func quoteCommand(argv []string) string {
	s := strings.Join(argv, " ")
	if len(s) > 20 {
		s = s[:19] + "…"
	}
	return strconv.Quote(s)
}

// writeJSONLine writes v as one line of JSON (streams of logs and events).
func writeJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
