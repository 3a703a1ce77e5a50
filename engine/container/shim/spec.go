package shim

import (
	"fmt"
	"syscall"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/reexec"
	"berth.dev/berth/engine/state"
)

// Roles of the re-executed berth binary.
const (
	RoleMonitor = "berth-monitor"
	RoleInit    = "berth-init"
	RoleExec    = "berth-exec"
)

// EnvInitPipe names the descriptor of the configuration socket of init and
// exec-init.
const EnvInitPipe = "_BERTH_INITPIPE"

// initEnv is the environment of init and exec-init (the command gets its
// own): the re-exec guard, the socket, and one P, which is all a process
// that runs one thread of setup needs and spares the page faults of a
// second P's structures (a few percent of its start-up).
var initEnv = []string{reexec.EnvGuard + "=1", EnvInitPipe + "=3", "GOMAXPROCS=1"}

// Names of the files in a container directory.
const (
	RecordFile = "container.json" // written by the engine
	StateFile  = "state.json"     // written by the monitor while it lives
	LogFile    = "container.log"  // CRI-format log, rotated to .1, .2 ...
	AttachSock = "attach.sock"    // the monitor's attach socket
	RootfsDir  = "rootfs"         // overlay mount point (inside the container only)
	UpperDir   = "upper"
	WorkDir    = "work"
)

// Spec is what a monitor needs to run a container. The engine computes it at
// each start and stores it in the container record.
type Spec struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Root     string            `json:"root"` // data root
	Dir      string            `json:"dir"`  // container directory
	Labels   map[string]string `json:"labels,omitempty"`
	Init     InitConfig        `json:"init"`
	Cgroup   []string          `json:"cgroup,omitempty"`   // cgroup directories to join (one per v1 hierarchy, or the v2 one)
	CgroupV2 bool              `json:"cgroupV2,omitempty"` // Cgroup[0] is a v2 directory: use CLONE_INTO_CGROUP
	// CgroupMarker is removed with the cgroup (it tells gc the cgroup is of
	// this data root).
	CgroupMarker string              `json:"cgroupMarker,omitempty"`
	Log          engine.LogConfig    `json:"log"`
	Health       *engine.Healthcheck `json:"health,omitempty"`
	Stdin        bool                `json:"stdin,omitempty"` // keep a stdin pipe open (docker run -i)
	// Cleanup is the role the monitor runs (with arguments root and ID) when
	// the container stops for good and Detach or AutoRemove is set.
	Cleanup string `json:"cleanup,omitempty"`
	// Detach says the network attachment must be released when the container
	// stops for good.
	Detach bool `json:"detach,omitempty"`
}

// Mount is one filesystem the init mounts into the rootfs.
type Mount struct {
	Type     engine.MountType `json:"type"`             // bind, volume (a bind of Source) or tmpfs
	Source   string           `json:"source,omitempty"` // host path
	Target   string           `json:"target"`           // absolute path in the container
	ReadOnly bool             `json:"readOnly,omitempty"`
	Size     int64            `json:"size,omitempty"` // tmpfs bytes
	// Populate copies the image's content at Target into Source first, when
	// Source is empty (a fresh named volume, as Docker fills it).
	Populate bool `json:"populate,omitempty"`
}

// InitConfig is what the init needs to build the container.
type InitConfig struct {
	Rootfs         string   `json:"rootfs"` // mount point of the overlay (host path)
	Lowers         []string `json:"lowers"` // top-most first
	Upper          string   `json:"upper"`
	Work           string   `json:"work"`
	ReadOnlyRootfs bool     `json:"readOnlyRootfs,omitempty"`
	// Volatile mounts the overlay with "volatile": it never syncs the upper
	// layer, which otherwise happens at every unmount, that is at every
	// exit of the container (a syncfs of the file system holding the data
	// root: milliseconds, or tens when other writers left dirty data). For
	// containers whose layer is deleted once they exit (AutoRemove), as
	// Podman does for --rm.
	Volatile bool    `json:"volatile,omitempty"`
	Mounts   []Mount `json:"mounts,omitempty"`
	// Files bind-mounted over /etc/hosts, /etc/hostname and /etc/resolv.conf.
	Hosts      string `json:"hosts,omitempty"`
	HostnameF  string `json:"hostnameFile,omitempty"`
	ResolvConf string `json:"resolvConf,omitempty"`
	Hostname   string `json:"hostname"`
	// NetNS is the network namespace to join; "" with NewNet false shares the
	// host's.
	NetNS  string  `json:"netns,omitempty"`
	NewNet bool    `json:"newNet,omitempty"`
	Proc   Process `json:"process"`
}

// Process is the user's process, for init and exec alike.
type Process struct {
	Args       []string `json:"args"`
	Env        []string `json:"env"`
	User       string   `json:"user,omitempty"`
	Cwd        string   `json:"cwd"`
	Caps       []string `json:"caps"` // CAP_ names
	NoNewPrivs bool     `json:"noNewPrivs"`
	Tty        bool     `json:"tty,omitempty"`
}

// ExecConfig is what the exec init needs.
type ExecConfig struct {
	Proc   Process  `json:"process"`
	Cgroup []string `json:"cgroup,omitempty"` // v1 directories to join; v2 uses CLONE_INTO_CGROUP
}

// State is the runtime state of a container, written by its monitor.
type State struct {
	Status       engine.Status  `json:"status"`
	Monitor      state.Process  `json:"monitor"`
	Init         state.Process  `json:"init"`
	ExitCode     int            `json:"exitCode"`
	Error        string         `json:"error,omitempty"`
	OOMKilled    bool           `json:"oomKilled,omitempty"`
	StartedAt    time.Time      `json:"startedAt"`
	FinishedAt   time.Time      `json:"finishedAt"`
	RestartCount int            `json:"restartCount"`
	Health       *engine.Health `json:"health,omitempty"`
	// Populated lists volume targets the init filled from the image.
	Populated []string `json:"populated,omitempty"`
}

// InitError is a setup failure of init or exec-init, reported to the parent
// as data so that the user reads what went wrong rather than "exit status 1".
type InitError struct {
	Op    string `json:"op"`             // "exec", "mount", "user", "cwd", ...
	Path  string `json:"path,omitempty"` // the file or command concerned
	Msg   string `json:"msg"`            // the complete message
	Errno int    `json:"errno,omitempty"`
	// NotFound is set when the command does not exist (exit code 127).
	NotFound bool `json:"notFound,omitempty"`
}

func (e *InitError) Error() string { return e.Msg }

// Unwrap exposes the errno. (The engine adds exec.ErrNotFound for a missing
// command: os/exec is not linked here, see doc.go.)
func (e *InitError) Unwrap() error {
	if e.Errno != 0 && !e.NotFound {
		return syscall.Errno(e.Errno)
	}
	return nil
}

// ExitCode is the exit status a shell would give for this failure: 127 when
// the command is missing, 126 when it cannot be executed, else 128.
func (e *InitError) ExitCode() int {
	switch {
	case e.NotFound:
		return 127
	case e.Op == "exec":
		return 126
	}
	return 128
}

func initErr(op, path string, err error) *InitError {
	ie := &InitError{Op: op, Path: path, Msg: fmt.Sprintf("%s %s: %v", op, path, err)}
	if path == "" {
		ie.Msg = fmt.Sprintf("%s: %v", op, err)
	}
	var errno syscall.Errno
	if asErrno(err, &errno) {
		ie.Errno = int(errno)
	}
	return ie
}
