package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/local"
	"berth.dev/berth/reconciler"
	"berth.dev/berth/reconciler/plan"
)

// openEngine opens the engine the reconciler verbs use, readOnly for those
// that change nothing; tests replace it with the in-memory fake. A verb
// that only reads does not collect what killed commands left behind (it
// makes no difference to what the reconciler observes); one that may make
// changes collects it while it reads the manifests and the host, and waits
// for it before it changes anything (WithSettle).
var openEngine = func(ctx context.Context, o *Options, readOnly bool) (engine.Engine, error) {
	if readOnly {
		return o.engine(ctx, local.GCNever)
	}
	return o.engine(ctx, local.GCBackground)
}

// projectFlags are the flags every reconciler verb shares.
type projectFlags struct {
	project string
}

func (p *projectFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&p.project, "project", "p", "", "project name (default: the manifest directory's name)")
}

func (p *projectFlags) target(args []string) reconciler.Target {
	t := reconciler.Target{Dir: ".", Project: p.project}
	if len(args) > 0 {
		t.Dir = args[0]
	}
	return t
}

// withReconciler opens the engine (readOnly: for a verb that changes
// nothing), runs fn with a reconciler on it, and closes the engine.
func withReconciler(ctx context.Context, o *Options, readOnly bool, log *slog.Logger, fn func(*reconciler.Reconciler) error) error {
	e, err := openEngine(ctx, o, readOnly)
	if err != nil {
		return err
	}
	defer e.Close()
	if log == nil {
		log = o.Log
	}
	opts := []reconciler.Option{reconciler.WithDataRoot(o.DataRoot), reconciler.WithLogger(log)}
	if le, ok := e.(*local.Engine); ok {
		opts = append(opts, reconciler.WithSettle(le.WaitGC))
	}
	return fn(reconciler.New(e, opts...))
}

// progressPrinter writes an apply's progress as Terraform does:
// "container/web: Creating...", "container/web: Creation complete after 0.2s [id=...]".
type progressPrinter struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *progressPrinter) event(ev reconciler.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := progressLine(ev)
	if line != "" {
		fmt.Fprintf(p.w, "%s: %s\n", ev.Key, line)
	}
}

// opWords are an operation's words: started, done, and the noun for
// failures. (A switch, not a package map, which every berth process would
// build at start-up.)
func opWords(op reconciler.Op) [3]string {
	switch op {
	case reconciler.OpDestroy:
		return [3]string{"Destroying...", "Destruction complete", "destroy"}
	case reconciler.OpCreate:
		return [3]string{"Creating...", "Creation complete", "create"}
	case reconciler.OpUpdate:
		return [3]string{"Modifying...", "Modifications complete", "update"}
	case reconciler.OpStart:
		return [3]string{"Starting...", "Started", "start"}
	case reconciler.OpPull:
		return [3]string{"Pulling...", "Pull complete", "pull"}
	}
	return [3]string{}
}

func progressLine(ev reconciler.Event) string {
	after := " after " + roundDuration(ev.Elapsed)
	id := ""
	if ev.ID != "" {
		id = " [id=" + truncID(ev.ID, false) + "]"
	}
	if ev.Op == reconciler.OpWait {
		switch ev.Phase {
		case reconciler.PhaseWaiting:
			return strings.ToUpper(ev.Message[:1]) + ev.Message[1:] + "..."
		case reconciler.PhaseDone:
			if ev.On.Name != "" {
				return ev.Message + after
			}
			if ev.Message == "" {
				return "Ready" + after
			}
			return "Ready (" + ev.Message + ")" + after
		case reconciler.PhaseFailed:
			return "Not ready" + after + ": " + ev.Message
		}
		return ""
	}
	w := opWords(ev.Op)
	switch ev.Phase {
	case reconciler.PhaseStarted:
		if ev.Op == reconciler.OpDestroy {
			return w[0] + id
		}
		return w[0]
	case reconciler.PhaseDone:
		return w[1] + after + id
	case reconciler.PhaseFailed:
		return "Failed to " + w[2] + after
	case reconciler.PhaseBlocked:
		return "Skipped: " + ev.Message
	}
	return ""
}

func roundDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// summaryLine is the closing line of an apply or destroy.
func summaryLine(verb string, s plan.Summary) string {
	if verb == "Destroy" {
		return fmt.Sprintf("Destroy complete! Resources: %d destroyed.", s.Destroy+s.Replace)
	}
	return fmt.Sprintf("%s complete! Resources: %d added, %d changed, %d replaced, %d destroyed.", verb, s.Add, s.Change, s.Replace, s.Destroy)
}

func lockWaiter(w io.Writer, timeout time.Duration) func(string) {
	return func(holder string) {
		fmt.Fprintf(w, "Waiting for the project lock, held by %s (up to %s; --lock-timeout)...\n", holder, timeout)
	}
}
