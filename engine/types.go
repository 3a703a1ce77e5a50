package engine

import (
	"io"
	"time"
)

// Labels that berth itself sets on objects it creates from manifests. The
// engine treats them as ordinary labels; the reconciler uses them to find
// what it owns.
const (
	LabelProject  = "dev.berth.project"
	LabelKind     = "dev.berth.kind"
	LabelName     = "dev.berth.name"
	LabelSpecHash = "dev.berth.spec-hash"
)

// ---------------------------------------------------------------- images

// Platform selects one manifest out of an image index.
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

// String returns os/arch[/variant], the form --platform takes.
func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// PullOptions tune Images.Pull.
type PullOptions struct {
	// Platform to choose from an index; zero means the host's.
	Platform *Platform
	// Progress, when non-nil, receives one event per layer state change.
	Progress func(PullProgress)
}

// PullProgress reports one layer's progress during a pull or push.
type PullProgress struct {
	Digest   string // layer digest
	Total    int64  // bytes, 0 if unknown
	Complete int64  // bytes done
	Status   string // "exists", "downloading", "verifying", "done", "pushing", "mounted", "skipped"
}

// PushOptions tune Images.Push.
type PushOptions struct {
	Progress func(PullProgress)
}

// ImportOptions tune Images.Import.
type ImportOptions struct {
	// Changes are Dockerfile-style instructions applied to the image config:
	// CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, STOPSIGNAL, VOLUME.
	Changes  []string
	Platform *Platform
}

// Image is what the engine knows of one local image.
type Image struct {
	// ID is the digest of the image config (sha256:...), as Docker's image ID.
	ID string `json:"id"`
	// Digest is the manifest digest the image was pulled or pushed as
	// (sha256:...); empty for an image that was only imported and never pushed.
	Digest string `json:"digest,omitempty"`
	// RepoTags are the name:tag references that point at this image.
	RepoTags []string `json:"repoTags,omitempty"`
	// RepoDigests are name@digest references known for it.
	RepoDigests []string    `json:"repoDigests,omitempty"`
	Size        int64       `json:"size"` // sum of compressed layer sizes
	Created     time.Time   `json:"created"`
	Platform    Platform    `json:"platform"`
	Config      ImageConfig `json:"config"`
	Layers      []string    `json:"layers,omitempty"` // diff IDs, bottom first
}

// ImageConfig is the runtime part of an OCI image config.
type ImageConfig struct {
	User         string            `json:"user,omitempty"`
	Env          []string          `json:"env,omitempty"`
	Entrypoint   []string          `json:"entrypoint,omitempty"`
	Cmd          []string          `json:"cmd,omitempty"`
	WorkingDir   string            `json:"workingDir,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	StopSignal   string            `json:"stopSignal,omitempty"`
	ExposedPorts []string          `json:"exposedPorts,omitempty"` // "80/tcp"
	Volumes      []string          `json:"volumes,omitempty"`
}

// RemoveImageOptions tune Images.Remove.
type RemoveImageOptions struct {
	// Force removes the image even when a container uses it (the container
	// keeps its snapshots until it is removed).
	Force bool
}

// PruneReport says what a prune removed.
type PruneReport struct {
	Deleted        []string `json:"deleted"`
	SpaceReclaimed int64    `json:"spaceReclaimed"`
}

// ------------------------------------------------------------ containers

// Status is a container's place in its state machine.
type Status string

// Container states, as Docker names them.
const (
	StatusCreated    Status = "created"
	StatusRunning    Status = "running"
	StatusRestarting Status = "restarting" // exited, restart policy will start it again after a back-off
	StatusExited     Status = "exited"
	StatusRemoving   Status = "removing"
	StatusDead       Status = "dead" // its monitor vanished and its process is gone without a recorded exit
)

// RestartPolicy says what the monitor does when the container's process exits.
type RestartPolicy struct {
	Name              string `json:"name"` // "no" (or ""), "on-failure", "always", "unless-stopped"
	MaximumRetryCount int    `json:"maximumRetryCount,omitempty"`
}

// Resources are the cgroup limits of a container. Zero means unlimited.
type Resources struct {
	MemoryBytes int64 `json:"memoryBytes,omitempty"`
	// NanoCPUs is CPUs times 1e9 ("0.5" = 500000000), turned into a CFS quota.
	NanoCPUs  int64 `json:"nanoCPUs,omitempty"`
	CPUShares int64 `json:"cpuShares,omitempty"`
	PidsLimit int64 `json:"pidsLimit,omitempty"`
}

// MountType says what a Mount's Source is.
type MountType string

// Mount types.
const (
	MountVolume MountType = "volume" // Source is a named volume, created if missing
	MountBind   MountType = "bind"   // Source is an absolute host path that must exist
	MountTmpfs  MountType = "tmpfs"  // Source is empty
)

// Mount is one filesystem mounted into a container.
type Mount struct {
	Type      MountType `json:"type"`
	Source    string    `json:"source,omitempty"`
	Target    string    `json:"target"`
	ReadOnly  bool      `json:"readOnly,omitempty"`
	TmpfsSize int64     `json:"tmpfsSize,omitempty"` // bytes, tmpfs only; 0 = kernel default
}

// PortBinding publishes one container port on the host.
type PortBinding struct {
	HostIP        string `json:"hostIP,omitempty"` // "" = all host addresses
	HostPort      uint16 `json:"hostPort"`
	ContainerPort uint16 `json:"containerPort"`
	Protocol      string `json:"protocol"` // "tcp" or "udp"
}

// EndpointConfig attaches a container to one network.
type EndpointConfig struct {
	Network string   `json:"network"`           // network name or ID
	Aliases []string `json:"aliases,omitempty"` // extra DNS names on that network
	IPv4    string   `json:"ipv4,omitempty"`    // static address; "" = allocate
}

// Network modes other than a list of bridge networks.
const (
	NetworkModeBridge = "bridge" // join Networks (the default when Networks is non-empty)
	NetworkModeNone   = "none"   // own network namespace with only lo
	NetworkModeHost   = "host"   // the host's network namespace
)

// Healthcheck runs a command in the container to judge its health.
type Healthcheck struct {
	// Test is the command, exec form. A single element "CMD-SHELL x" style is
	// not used here: callers wrap shell commands as ["/bin/sh", "-c", "x"].
	Test        []string      `json:"test"`
	Interval    time.Duration `json:"interval,omitempty"`    // default 30s
	Timeout     time.Duration `json:"timeout,omitempty"`     // default 30s
	Retries     int           `json:"retries,omitempty"`     // default 3
	StartPeriod time.Duration `json:"startPeriod,omitempty"` // default 0
}

// LogConfig bounds a container's captured logs.
type LogConfig struct {
	MaxSize  int64 `json:"maxSize,omitempty"`  // bytes per file; 0 = 10 MiB
	MaxFiles int   `json:"maxFiles,omitempty"` // files kept; 0 = 3
}

// ContainerConfig is everything needed to create a container. Nil slices mean
// "take the image's value"; for Entrypoint and Cmd the rules are Docker's:
// setting Entrypoint clears the image's Cmd unless Cmd is also set.
type ContainerConfig struct {
	Name       string            `json:"name"`
	Image      string            `json:"image"` // reference, digest or image ID, resolved locally
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Cmd        []string          `json:"cmd,omitempty"`
	Env        []string          `json:"env,omitempty"` // KEY=value, merged over the image's
	WorkingDir string            `json:"workingDir,omitempty"`
	User       string            `json:"user,omitempty"` // uid[:gid] or names from the image's /etc/passwd
	Hostname   string            `json:"hostname,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`

	Mounts      []Mount          `json:"mounts,omitempty"`
	NetworkMode string           `json:"networkMode,omitempty"` // "" = bridge if Networks else none
	Networks    []EndpointConfig `json:"networks,omitempty"`
	Ports       []PortBinding    `json:"ports,omitempty"`

	Restart     RestartPolicy `json:"restart"`
	Resources   Resources     `json:"resources"`
	Healthcheck *Healthcheck  `json:"healthcheck,omitempty"`
	StopSignal  string        `json:"stopSignal,omitempty"`  // default SIGTERM (or the image's)
	StopTimeout time.Duration `json:"stopTimeout,omitempty"` // default 10s

	ReadOnlyRootfs bool      `json:"readOnlyRootfs,omitempty"`
	CapAdd         []string  `json:"capAdd,omitempty"`
	CapDrop        []string  `json:"capDrop,omitempty"`
	Log            LogConfig `json:"log"`

	Tty       bool `json:"tty,omitempty"`
	OpenStdin bool `json:"openStdin,omitempty"`
	// AutoRemove removes the container when its process exits (berth run --rm).
	AutoRemove bool `json:"autoRemove,omitempty"`
}

// Health is the result of a container's healthchecks so far.
type Health struct {
	Status        string        `json:"status"` // "starting", "healthy", "unhealthy"
	FailingStreak int           `json:"failingStreak"`
	Log           []HealthProbe `json:"log,omitempty"` // the last few probes
}

// HealthProbe is one run of a healthcheck.
type HealthProbe struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	ExitCode int       `json:"exitCode"`
	Output   string    `json:"output"`
}

// ContainerState is the observed state, re-checked against the kernel.
type ContainerState struct {
	Status       Status    `json:"status"`
	Running      bool      `json:"running"`
	Pid          int       `json:"pid,omitempty"`
	ExitCode     int       `json:"exitCode"`
	Error        string    `json:"error,omitempty"` // why the last start failed
	OOMKilled    bool      `json:"oomKilled"`
	StartedAt    time.Time `json:"startedAt"`
	FinishedAt   time.Time `json:"finishedAt"`
	RestartCount int       `json:"restartCount"`
	Health       *Health   `json:"health,omitempty"`
}

// EndpointStatus is one network attachment as it is.
type EndpointStatus struct {
	Network    string   `json:"network"`
	NetworkID  string   `json:"networkID"`
	Interface  string   `json:"interface"` // name inside the container: eth0, eth1...
	IPv4       string   `json:"ipv4"`      // address/prefix
	Gateway    string   `json:"gateway"`
	MacAddress string   `json:"macAddress"`
	Aliases    []string `json:"aliases,omitempty"`
}

// Container is what Inspect and List return.
type Container struct {
	ID        string           `json:"id"`
	Name      string           `json:"name"`
	Created   time.Time        `json:"created"`
	ImageID   string           `json:"imageID"` // config digest of the image it was created from
	Config    ContainerConfig  `json:"config"`
	State     ContainerState   `json:"state"`
	Endpoints []EndpointStatus `json:"endpoints,omitempty"`
	// Ports are the published ports as bound while the container runs:
	// Config.Ports with the host port chosen at start for each one given
	// as 0 (docker port). Empty when it does not run.
	Ports []PortBinding `json:"ports,omitempty"`
	// Command is the resolved argv the container runs (entrypoint + cmd).
	Command []string `json:"command"`
	// LogPath is the current log file.
	LogPath string `json:"logPath,omitempty"`
}

// ListContainersOptions filter Containers.List.
type ListContainersOptions struct {
	All    bool              // include stopped containers
	Labels map[string]string // every label must match; "" value matches presence
}

// RemoveContainerOptions tune Containers.Remove.
type RemoveContainerOptions struct {
	Force bool // kill a running container first
	// Volumes also removes anonymous volumes created for it. Named volumes
	// always outlive their containers.
	Volumes bool
}

// ContainerUpdate changes what can change without a restart. Nil fields are
// left as they are.
type ContainerUpdate struct {
	Restart   *RestartPolicy
	Resources *Resources
	Labels    map[string]string // replaces all labels when non-nil
}

// WaitCondition says what Containers.Wait waits for.
type WaitCondition string

// Wait conditions, as Docker's.
const (
	WaitNotRunning WaitCondition = "not-running" // default
	WaitNextExit   WaitCondition = "next-exit"
	WaitRemoved    WaitCondition = "removed"
)

// LogOptions select log entries.
type LogOptions struct {
	Follow bool
	Since  time.Time // zero = from the start
	Until  time.Time // zero = no end
	Tail   int       // last N lines; < 0 = all
}

// LogEntry is one captured line (or partial line) of output.
type LogEntry struct {
	Time   time.Time `json:"time"`
	Stream string    `json:"stream"` // "stdout" or "stderr"
	Line   []byte    `json:"line"`   // with its trailing newline, if it had one
}

// Streams are the standard streams of an attach or exec. Nil members are not
// connected.
type Streams struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer // ignored when Tty
	Tty    bool
	// Resize delivers terminal size changes while Tty.
	Resize <-chan WindowSize
}

// WindowSize is a terminal size.
type WindowSize struct {
	Rows, Cols uint16
}

// ExecConfig describes a process to run in a running container.
type ExecConfig struct {
	Cmd        []string `json:"cmd"`
	Env        []string `json:"env,omitempty"`
	User       string   `json:"user,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	Privileged bool     `json:"privileged,omitempty"`
}

// Stats are a point-in-time reading of a container's cgroup.
type Stats struct {
	Time        time.Time `json:"time"`
	MemoryUsage int64     `json:"memoryUsage"`
	MemoryLimit int64     `json:"memoryLimit"` // 0 = unlimited
	CPUUsage    uint64    `json:"cpuUsageNanos"`
	Pids        int64     `json:"pids"`
	PidsLimit   int64     `json:"pidsLimit"` // 0 = unlimited
	// Network counters summed over the container's interfaces.
	NetRxBytes uint64 `json:"netRxBytes"`
	NetTxBytes uint64 `json:"netTxBytes"`
}

// -------------------------------------------------------------- networks

// NetworkConfig creates a network.
type NetworkConfig struct {
	Name     string            `json:"name"`
	Driver   string            `json:"driver"`            // "bridge" (the only driver)
	Subnet   string            `json:"subnet,omitempty"`  // CIDR; "" = allocate from the default pool
	Gateway  string            `json:"gateway,omitempty"` // "" = first address of the subnet
	Internal bool              `json:"internal,omitempty"`
	DNS      bool              `json:"dns"` // resolve container names on this network
	Labels   map[string]string `json:"labels,omitempty"`
}

// Network is what Inspect and List return.
type Network struct {
	ID      string        `json:"id"`
	Name    string        `json:"name"`
	Created time.Time     `json:"created"`
	Config  NetworkConfig `json:"config"` // with Subnet and Gateway filled in
	Bridge  string        `json:"bridge"` // Linux bridge name
	// Containers attached, by container ID.
	Containers map[string]EndpointStatus `json:"containers,omitempty"`
}

// ListOptions filter List calls of networks and volumes.
type ListOptions struct {
	Labels map[string]string // every label must match; "" value matches presence
}

// --------------------------------------------------------------- volumes

// VolumeConfig creates a named volume.
type VolumeConfig struct {
	Name   string            `json:"name"`
	Driver string            `json:"driver"` // "local"
	Labels map[string]string `json:"labels,omitempty"`
}

// Volume is what Inspect and List return.
type Volume struct {
	Name       string       `json:"name"`
	Created    time.Time    `json:"created"`
	Config     VolumeConfig `json:"config"`
	Mountpoint string       `json:"mountpoint"`
	// UsedBy lists the IDs of containers that mount it.
	UsedBy []string `json:"usedBy,omitempty"`
}

// ---------------------------------------------------------------- events

// Event is one thing that happened, published by monitors and the engine.
type Event struct {
	Time   time.Time         `json:"time"`
	Type   string            `json:"type"`   // "container", "network", "volume", "image"
	Action string            `json:"action"` // "create", "start", "die", "restart", "health_status", "oom", "destroy", ...
	ID     string            `json:"id"`
	Name   string            `json:"name,omitempty"`
	Attrs  map[string]string `json:"attrs,omitempty"` // exitCode, health, and the object's labels
}

// MatchLabels reports whether have carries every label of want; a want value
// of "" matches any value.
func MatchLabels(have, want map[string]string) bool {
	for k, v := range want {
		hv, ok := have[k]
		if !ok || (v != "" && hv != v) {
			return false
		}
	}
	return true
}
