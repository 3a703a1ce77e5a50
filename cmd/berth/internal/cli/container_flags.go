package cli

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"berth.dev/berth/engine"
)

// containerFlags are the flags berth run and berth create share, and their
// conversion into an engine.ContainerConfig. New container flags (ports,
// networks...) go here, with their conversion in config or in an extension
// registered with addContainerFlags.
type containerFlags struct {
	name           string
	env            []string
	envFiles       []string
	volumes        []string
	mounts         []string
	tmpfs          []string
	workdir        string
	user           string
	hostname       string
	memory         string
	cpus           float64
	cpuShares      int64
	pidsLimit      int64
	restart        string
	readOnly       bool
	capAdd         []string
	capDrop        []string
	entrypoint     string
	stopSignal     string
	stopTimeout    int
	labels         []string
	interactive    bool
	tty            bool
	rm             bool
	logOpts        []string
	healthCmd      string
	healthInterval time.Duration
	healthTimeout  time.Duration
	healthRetries  int
	healthStart    time.Duration
}

// containerFlagExtensions let other parts add flags to run and create: add
// registers them, apply folds their values into the config.
var containerFlagExtensions []struct {
	add   func(*pflag.FlagSet)
	apply func(*pflag.FlagSet, *engine.ContainerConfig) error
}

// addContainerFlags registers an extension of the run and create flags.
func addContainerFlags(add func(*pflag.FlagSet), apply func(*pflag.FlagSet, *engine.ContainerConfig) error) {
	containerFlagExtensions = append(containerFlagExtensions, struct {
		add   func(*pflag.FlagSet)
		apply func(*pflag.FlagSet, *engine.ContainerConfig) error
	}{add, apply})
}

func (f *containerFlags) add(fs *pflag.FlagSet) {
	fs.SetInterspersed(false) // flags after IMAGE belong to the command
	// -h is --hostname, as in Docker: help gets no shorthand.
	fs.Bool("help", false, "help for this command")
	fs.StringVar(&f.name, "name", "", "assign a name to the container")
	fs.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable, KEY=VALUE or KEY to take it from here (repeatable)")
	fs.StringArrayVar(&f.envFiles, "env-file", nil, "read environment variables from a file (repeatable)")
	fs.StringArrayVarP(&f.volumes, "volume", "v", nil, "mount a volume or host path: NAME:/path, /host:/path, or /path for an anonymous volume; :ro for read-only")
	fs.StringArrayVar(&f.mounts, "mount", nil, "mount: type=bind|volume|tmpfs,source=...,target=...[,readonly][,tmpfs-size=BYTES]")
	fs.StringArrayVar(&f.tmpfs, "tmpfs", nil, "mount a tmpfs: /path[:size=64m]")
	fs.StringVarP(&f.workdir, "workdir", "w", "", "working directory inside the container")
	fs.StringVarP(&f.user, "user", "u", "", "user: name|uid[:group|gid]")
	fs.StringVarP(&f.hostname, "hostname", "h", "", "container hostname")
	fs.StringVarP(&f.memory, "memory", "m", "", "memory limit (e.g. 256m, 1g)")
	fs.Float64Var(&f.cpus, "cpus", 0, "number of CPUs (e.g. 0.5)")
	fs.Int64VarP(&f.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fs.Int64Var(&f.pidsLimit, "pids-limit", 0, "maximum number of processes (0 or -1: unlimited)")
	fs.StringVar(&f.restart, "restart", "no", "restart policy: no, always, unless-stopped, on-failure[:N]")
	fs.BoolVar(&f.readOnly, "read-only", false, "mount the root filesystem read-only")
	fs.StringArrayVar(&f.capAdd, "cap-add", nil, "add a capability (or ALL)")
	fs.StringArrayVar(&f.capDrop, "cap-drop", nil, "drop a capability (or ALL)")
	fs.StringVar(&f.entrypoint, "entrypoint", "", "override the image's entrypoint (\"\" clears it)")
	fs.StringVar(&f.stopSignal, "stop-signal", "", "signal to stop the container (default SIGTERM or the image's)")
	fs.IntVar(&f.stopTimeout, "stop-timeout", -1, "seconds to wait after the stop signal before SIGKILL (default 10)")
	fs.StringArrayVarP(&f.labels, "label", "l", nil, "set a label, KEY=VALUE (repeatable)")
	fs.BoolVarP(&f.interactive, "interactive", "i", false, "keep stdin open")
	fs.BoolVarP(&f.tty, "tty", "t", false, "allocate a terminal")
	fs.BoolVar(&f.rm, "rm", false, "remove the container when it exits")
	fs.StringArrayVar(&f.logOpts, "log-opt", nil, "log option: max-size=10m, max-file=3")
	fs.StringVar(&f.healthCmd, "health-cmd", "", "healthcheck command (run with /bin/sh -c)")
	fs.DurationVar(&f.healthInterval, "health-interval", 0, "time between healthchecks (default 30s)")
	fs.DurationVar(&f.healthTimeout, "health-timeout", 0, "time a healthcheck may take (default 30s)")
	fs.IntVar(&f.healthRetries, "health-retries", 0, "failures in a row that make the container unhealthy (default 3)")
	fs.DurationVar(&f.healthStart, "health-start-period", 0, "time during which failures do not count")
	for _, x := range containerFlagExtensions {
		x.add(fs)
	}
}

// config turns the flags, the image and the command into a container
// configuration. lookupEnv resolves "-e KEY" and KEY lines of env files.
func (f *containerFlags) config(fs *pflag.FlagSet, image string, command []string, lookupEnv func(string) (string, bool)) (engine.ContainerConfig, error) {
	cfg := engine.ContainerConfig{
		Name:           f.name,
		Image:          image,
		Cmd:            command,
		WorkingDir:     f.workdir,
		User:           f.user,
		Hostname:       f.hostname,
		ReadOnlyRootfs: f.readOnly,
		CapAdd:         f.capAdd,
		CapDrop:        f.capDrop,
		StopSignal:     f.stopSignal,
		Tty:            f.tty,
		OpenStdin:      f.interactive,
		AutoRemove:     f.rm,
	}
	bad := func(flag, value, why string) error {
		return fmt.Errorf("--%s %q: %s: %w", flag, value, why, engine.ErrInvalid)
	}
	if fs.Changed("entrypoint") {
		cfg.Entrypoint = []string{}
		if f.entrypoint != "" {
			cfg.Entrypoint = []string{f.entrypoint}
		}
	}
	for _, file := range f.envFiles {
		vars, err := readEnvFile(file, lookupEnv)
		if err != nil {
			return cfg, err
		}
		cfg.Env = append(cfg.Env, vars...)
	}
	for _, e := range f.env {
		if kv, ok := envValue(e, lookupEnv); ok {
			cfg.Env = append(cfg.Env, kv)
		}
	}
	if len(f.labels) > 0 {
		cfg.Labels = map[string]string{}
		for _, l := range f.labels {
			k, v, _ := strings.Cut(l, "=")
			if k == "" {
				return cfg, bad("label", l, "want KEY=VALUE")
			}
			cfg.Labels[k] = v
		}
	}
	if f.memory != "" {
		n, err := parseBytes(f.memory)
		if err != nil {
			return cfg, bad("memory", f.memory, err.Error())
		}
		cfg.Resources.MemoryBytes = n
	}
	if f.cpus < 0 {
		return cfg, bad("cpus", fmt.Sprint(f.cpus), "negative")
	}
	cfg.Resources.NanoCPUs = int64(f.cpus * 1e9)
	cfg.Resources.CPUShares = f.cpuShares
	if f.pidsLimit > 0 {
		cfg.Resources.PidsLimit = f.pidsLimit
	}
	if f.stopTimeout >= 0 {
		cfg.StopTimeout = time.Duration(f.stopTimeout) * time.Second
	}
	rp, err := parseRestart(f.restart)
	if err != nil {
		return cfg, err
	}
	cfg.Restart = rp
	for _, v := range f.volumes {
		m, err := parseVolumeFlag(v)
		if err != nil {
			return cfg, err
		}
		cfg.Mounts = append(cfg.Mounts, m)
	}
	for _, v := range f.mounts {
		m, err := parseMountFlag(v)
		if err != nil {
			return cfg, err
		}
		cfg.Mounts = append(cfg.Mounts, m)
	}
	for _, v := range f.tmpfs {
		target, opts, _ := strings.Cut(v, ":")
		m := engine.Mount{Type: engine.MountTmpfs, Target: target}
		for _, o := range strings.Split(opts, ",") {
			if size, ok := strings.CutPrefix(o, "size="); ok {
				n, err := parseBytes(size)
				if err != nil {
					return cfg, bad("tmpfs", v, err.Error())
				}
				m.TmpfsSize = n
			} else if o == "ro" {
				m.ReadOnly = true
			}
		}
		cfg.Mounts = append(cfg.Mounts, m)
	}
	for _, o := range f.logOpts {
		k, val, _ := strings.Cut(o, "=")
		switch k {
		case "max-size":
			n, err := parseBytes(val)
			if err != nil {
				return cfg, bad("log-opt", o, err.Error())
			}
			cfg.Log.MaxSize = n
		case "max-file":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 {
				return cfg, bad("log-opt", o, "want a positive number")
			}
			cfg.Log.MaxFiles = n
		default:
			return cfg, bad("log-opt", o, "known options are max-size and max-file")
		}
	}
	if f.healthCmd != "" {
		cfg.Healthcheck = &engine.Healthcheck{
			Test: []string{"/bin/sh", "-c", f.healthCmd}, Interval: f.healthInterval, Timeout: f.healthTimeout,
			Retries: f.healthRetries, StartPeriod: f.healthStart,
		}
	}
	for _, x := range containerFlagExtensions {
		if err := x.apply(fs, &cfg); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

func envValue(e string, lookupEnv func(string) (string, bool)) (string, bool) {
	if strings.Contains(e, "=") {
		return e, true
	}
	if v, ok := lookupEnv(e); ok {
		return e + "=" + v, true
	}
	return "", false // Docker drops a variable that is not set here either
}

func readEnvFile(path string, lookupEnv func(string) (string, bool)) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--env-file: %w", err)
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimLeft(s.Text(), " \t")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if kv, ok := envValue(line, lookupEnv); ok {
			out = append(out, kv)
		}
	}
	return out, s.Err()
}

// parseRestart parses no, always, unless-stopped and on-failure[:N].
func parseRestart(s string) (engine.RestartPolicy, error) {
	name, count, hasCount := strings.Cut(s, ":")
	p := engine.RestartPolicy{Name: name}
	switch name {
	case "", "no", "always", "unless-stopped":
		if hasCount {
			return p, fmt.Errorf("--restart %q: a retry count applies to on-failure only: %w", s, engine.ErrInvalid)
		}
	case "on-failure":
		if hasCount {
			n, err := strconv.Atoi(count)
			if err != nil || n < 0 {
				return p, fmt.Errorf("--restart %q: bad retry count: %w", s, engine.ErrInvalid)
			}
			p.MaximumRetryCount = n
		}
	default:
		return p, fmt.Errorf("--restart %q: want no, always, unless-stopped or on-failure[:N]: %w", s, engine.ErrInvalid)
	}
	return p, nil
}

// parseVolumeFlag parses -v: NAME:/path, /host:/path, /path (anonymous),
// with an optional :ro or :rw.
func parseVolumeFlag(s string) (engine.Mount, error) {
	parts := strings.Split(s, ":")
	ro := false
	if n := len(parts); n >= 2 && (parts[n-1] == "ro" || parts[n-1] == "rw") {
		ro = parts[n-1] == "ro"
		parts = parts[:n-1]
	}
	bad := func(why string) (engine.Mount, error) {
		return engine.Mount{}, fmt.Errorf("-v %q: %s: %w", s, why, engine.ErrInvalid)
	}
	switch len(parts) {
	case 1:
		if !strings.HasPrefix(parts[0], "/") {
			return bad("the container path must be absolute")
		}
		return engine.Mount{Type: engine.MountVolume, Source: anonymousVolume(), Target: parts[0], ReadOnly: ro}, nil
	case 2:
		src, dst := parts[0], parts[1]
		if !strings.HasPrefix(dst, "/") {
			return bad("the container path must be absolute")
		}
		if strings.HasPrefix(src, "/") || strings.HasPrefix(src, ".") {
			abs, err := filepath.Abs(src)
			if err != nil {
				return bad(err.Error())
			}
			return engine.Mount{Type: engine.MountBind, Source: abs, Target: dst, ReadOnly: ro}, nil
		}
		if src == "" {
			return bad("empty volume name")
		}
		return engine.Mount{Type: engine.MountVolume, Source: src, Target: dst, ReadOnly: ro}, nil
	}
	return bad("want SOURCE:TARGET[:ro]")
}

func anonymousVolume() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// parseMountFlag parses --mount type=...,source=...,target=...[,readonly].
func parseMountFlag(s string) (engine.Mount, error) {
	m := engine.Mount{Type: engine.MountVolume}
	bad := func(why string) (engine.Mount, error) {
		return engine.Mount{}, fmt.Errorf("--mount %q: %s: %w", s, why, engine.ErrInvalid)
	}
	for _, field := range strings.Split(s, ",") {
		k, v, hasValue := strings.Cut(field, "=")
		switch strings.ToLower(k) {
		case "type":
			m.Type = engine.MountType(v)
		case "source", "src":
			m.Source = v
		case "target", "destination", "dst":
			m.Target = v
		case "readonly", "ro":
			m.ReadOnly = !hasValue || v == "true" || v == "1"
		case "tmpfs-size":
			n, err := parseBytes(v)
			if err != nil {
				return bad(err.Error())
			}
			m.TmpfsSize = n
		default:
			return bad("unknown option " + k)
		}
	}
	switch m.Type {
	case engine.MountBind:
		if m.Source == "" {
			return bad("a bind mount needs a source")
		}
		abs, err := filepath.Abs(m.Source)
		if err != nil {
			return bad(err.Error())
		}
		m.Source = abs
	case engine.MountVolume:
		if m.Source == "" {
			m.Source = anonymousVolume()
		}
	case engine.MountTmpfs:
	default:
		return bad("type must be bind, volume or tmpfs")
	}
	if m.Target == "" {
		return bad("no target")
	}
	return m, nil
}

// parseBytes parses sizes such as 512, 64k, 256m, 1g, 1.5GiB.
func parseBytes(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "ib"), "b")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("not a size")
	}
	return int64(v * float64(mult)), nil
}

// commandArgs returns the command that follows the first positional
// argument (IMAGE or CONTAINER). Flag parsing stops at that argument, so a
// "--" written after it, as in `berth exec web -- ps`, reaches us as a word
// of its own; like Docker, drop it rather than run a program named "--".
func commandArgs(args []string) []string {
	rest := args[1:]
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	return rest
}
