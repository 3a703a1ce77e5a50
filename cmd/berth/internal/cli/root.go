package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"golang.org/x/term"
)

// Settings keys, shared by flags, BERTH_* variables and the config file.
const (
	keyDataRoot   = "data-root"
	keyLogLevel   = "log-level"
	keyOutput     = "output"
	keyConfig     = "config"
	keyInsecure   = "insecure-registries"
	defaultConfig = "/etc/berth/config.yaml"
)

// Options are the global settings every verb sees, resolved with the
// precedence flags > BERTH_* environment > config file > defaults.
type Options struct {
	DataRoot string
	LogLevel string
	Output   string // "text" or "json"
	// InsecureRegistries may be reached over plain HTTP (loopback always may).
	InsecureRegistries []string

	In       io.Reader
	Out, Err io.Writer
	// Color is true when Out is a terminal and NO_COLOR is unset.
	Color bool
	// Log writes structured diagnostics to Err at LogLevel.
	Log *slog.Logger

	v *viper.Viper // the settings, once resolved
}

// JSON reports whether machine output was asked for.
func (o *Options) JSON() bool { return o.Output == "json" }

// ExitError ends the program with Code after printing Err (when non-nil).
// Verbs use it for exit codes other than 1: validate's 1 with its own report,
// plan's 2 for "changes present".
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Run executes berth with args and returns the process exit code.
func Run(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) int {
	o := &Options{In: in, Out: out, Err: errOut}
	// Only the verb being run is built (every verb for help, completion or
	// an unknown verb): building all of them, flags and all, is a
	// measurable part of a short command's run time.
	root := newCmdRoot(o, verbOf(args))
	root.SetArgs(terraformOut(args))
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errOut)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(errOut, "berth: %v\n", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintf(errOut, "berth: %v\n", err)
	return 1
}

// NewCmdRoot builds the command tree.
func NewCmdRoot(o *Options) *cobra.Command { return newCmdRoot(o, "") }

// newCmdRoot builds the root command with only the verb named only, or
// with every verb when only names none.
func newCmdRoot(o *Options, only string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "berth",
		Short: "Run exactly what a directory of container manifests describes",
		Long: `berth makes a Linux host run exactly what a directory of YAML manifests
describes: images, containers, networks and volumes.

  berth plan DIR     show what would change (exit 0 none, 2 changes, 1 error)
  berth apply DIR    converge the host to the manifests
  berth watch DIR    keep converging as files change and the host drifts`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return o.resolve(cmd)
		},
	}
	f := cmd.PersistentFlags()
	f.String(keyDataRoot, "/var/lib/berth", "directory holding berth's state")
	f.String(keyLogLevel, "warn", "log level: debug, info, warn, error")
	f.StringP(keyOutput, "o", "text", "output format: text or json")
	f.String(keyConfig, defaultConfig, "config file (YAML)")
	f.StringSlice(keyInsecure, nil, "registries that may be reached over plain HTTP")
	_ = cmd.RegisterFlagCompletionFunc(keyOutput, cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc(keyLogLevel, cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))

	for _, v := range verbs {
		if only == "" || v.name == only {
			cmd.AddCommand(v.new(o))
		}
	}
	return cmd
}

// verb is a subcommand: its name (the first word of its Use) and its
// constructor.
type verb struct {
	name string
	new  func(*Options) *cobra.Command
}

// verbs are the subcommands; each verb file adds itself in an init
// function, which keeps this file free of per-verb edits.
var verbs []verb

func register(name string, fn func(*Options) *cobra.Command) {
	verbs = append(verbs, verb{name: name, new: fn})
}

// verbOf returns the registered verb args run, or "" when they run none
// (no verb, help, completion, an unknown verb): those need every verb.
func verbOf(args []string) string {
	i := verbIndex(args)
	if i < 0 {
		return ""
	}
	for _, v := range verbs {
		if v.name == args[i] {
			return v.name
		}
	}
	return ""
}

// verbIndex returns the index in args of the verb: the first argument that
// is neither a flag nor the value of a global flag; -1 if there is none.
func verbIndex(args []string) int {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return -1
		}
		if strings.HasPrefix(a, "-") {
			switch a {
			case "--" + keyDataRoot, "--" + keyLogLevel, "--" + keyOutput, "-o", "--" + keyConfig, "--" + keyInsecure:
				i++ // its value
			}
			continue
		}
		return i
	}
	return -1
}

// resolve reads the global settings: a flag set on the command line, else
// a non-empty BERTH_<KEY> variable (data-root: BERTH_DATA_ROOT), else the
// config file (YAML, keys in any case), else the flag's default.
func (o *Options) resolve(cmd *cobra.Command) error {
	v := viper.New()
	o.v = v
	v.SetEnvPrefix("BERTH")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if err := v.BindPFlags(cmd.Flags()); err != nil {
		return err
	}
	if cfg := v.GetString(keyConfig); cfg != "" {
		v.SetConfigFile(cfg)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			// The default file is optional; one named by flag or BERTH_CONFIG is not.
			explicit := cmd.Flags().Changed(keyConfig) || os.Getenv("BERTH_CONFIG") != ""
			var nf viper.ConfigFileNotFoundError
			if explicit || !(errors.As(err, &nf) || errors.Is(err, fs.ErrNotExist)) {
				return fmt.Errorf("config %s: %w", cfg, err)
			}
		}
	}
	o.DataRoot = v.GetString(keyDataRoot)
	o.LogLevel = v.GetString(keyLogLevel)
	o.Output = v.GetString(keyOutput)
	o.InsecureRegistries = splitList(v.GetStringSlice(keyInsecure))
	if o.Output != "text" && o.Output != "json" {
		return fmt.Errorf("--output %q: must be text or json", o.Output)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return fmt.Errorf("--log-level %q: %w", o.LogLevel, err)
	}
	o.Log = slog.New(slog.NewTextHandler(o.Err, &slog.HandlerOptions{Level: level}))
	o.Color = isTerminal(o.Out) && os.Getenv("NO_COLOR") == ""
	return nil
}

// inConfig reports whether the config file sets key.
func (o *Options) inConfig(key string) bool { return o.v != nil && o.v.InConfig(key) }

// splitList splits the elements of a list setting at commas as well:
// viper splits a variable or a config string only at spaces, so that
// BERTH_INSECURE_REGISTRIES=a:5000,b:5000 would name one registry
// "a:5000,b:5000", where the flag takes commas.
func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		out = append(out, strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })...)
	}
	return out
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// flagChanged reports whether the user set a flag explicitly.
func flagChanged(fs *pflag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	return f != nil && f.Changed
}
