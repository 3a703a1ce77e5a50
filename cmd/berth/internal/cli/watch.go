package cli

import (
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/reconciler"
)

func init() { register("watch", NewCmdWatch) }

// WatchFlags are `berth watch`'s flags.
type WatchFlags struct {
	projectFlags
	Resync       time.Duration
	Debounce     time.Duration
	PruneVolumes bool
	AllowEmpty   bool
	LockTimeout  time.Duration
}

// NewCmdWatch builds `berth watch`.
func NewCmdWatch(o *Options) *cobra.Command {
	var f WatchFlags
	cmd := &cobra.Command{
		Use:   "watch [DIR]",
		Short: "Keep the host converged as the manifests change and the host drifts",
		Long: `Apply the manifests in DIR (default: the current directory) and keep
applying: when a file changes (editors' saves and git checkouts become one
reload), when a container of the project exits, changes health or is
removed, when a network is removed, and on a periodic resync. A manifest that
does not load is reported with file:line and the last good state is kept.
Failures are retried per resource with exponential back-off (1s to 5m);
problems that need a person wait for the manifest to change.

Runs in the foreground until SIGINT or SIGTERM; the containers keep running
after it stops. It holds the project's lock while it runs. Logs are
structured lines on standard error (info level unless --log-level says
otherwise); "berth status" shows each resource's condition.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log := o.Log
			if !flagChanged(cmd.Root().PersistentFlags(), keyLogLevel) && os.Getenv("BERTH_LOG_LEVEL") == "" && !o.inConfig(keyLogLevel) {
				log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))
			}
			opts := reconciler.WatchOptions{
				Target: f.target(args), Resync: f.Resync, Debounce: f.Debounce,
				PruneVolumes: f.PruneVolumes, AllowEmpty: f.AllowEmpty, LockTimeout: f.LockTimeout,
			}
			return withReconciler(cmd.Context(), o, false, log, func(r *reconciler.Reconciler) error {
				return r.Watch(cmd.Context(), opts)
			})
		},
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.DurationVar(&f.Resync, "resync", 30*time.Second, "period of the full re-check that repairs drift no event reports (jittered)")
	fl.DurationVar(&f.Debounce, "debounce", 50*time.Millisecond, "quiet time after a file change before the manifests are re-read")
	fl.BoolVar(&f.PruneVolumes, "prune-volumes", false, "also delete owned volumes that left the manifests")
	fl.BoolVar(&f.AllowEmpty, "allow-empty", false, "let manifests with no resources delete what the project owns")
	fl.DurationVar(&f.LockTimeout, "lock-timeout", time.Minute, "how long to wait for a running apply of the project to finish")
	return cmd
}
