package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// APIVersion is the only apiVersion manifests may declare.
const APIVersion = "berth.dev/v1alpha1"

// Kind names what a manifest document describes.
type Kind string

// The kinds of resources.
const (
	KindNetwork   Kind = "Network"
	KindVolume    Kind = "Volume"
	KindImage     Kind = "Image"
	KindContainer Kind = "Container"
)

// Kinds returns every kind in creation order: what others refer to comes
// first (networks, volumes and images before the containers that use them).
// Set.Resources is sorted in this order.
func Kinds() []Kind { return []Kind{KindNetwork, KindVolume, KindImage, KindContainer} }

func (k Kind) rank() int {
	switch k {
	case KindNetwork:
		return 0
	case KindVolume:
		return 1
	case KindImage:
		return 2
	case KindContainer:
		return 3
	}
	return 4
}

// Key identifies a resource: names are unique per kind across all files of
// a Set.
type Key struct {
	Kind Kind
	Name string
}

// String returns "Kind/name", e.g. "Container/web".
func (k Key) String() string { return string(k.Kind) + "/" + k.Name }

// Pos is a position in a manifest file.
type Pos struct {
	File   string // as it was named when loading ("<stdin>" for a reader)
	Line   int    // 1-based
	Column int    // 1-based
}

// String returns "file:line:col".
func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column) }

// Metadata names a resource and carries labels and annotations.
type Metadata struct {
	// Name of the resource, unique per kind: lowercase letters, digits, '-',
	// '_' and '.', starting and ending with a letter or digit, at most 63
	// characters. Containers are reachable by this name on their networks.
	Name string `json:"name"`
	// Labels are set on the objects berth creates for the resource (for a
	// container, its labels). Keys starting with dev.berth. are reserved.
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations are for tools and people; berth does not interpret them.
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Spec is the kind-specific part of a resource: *ImageSpec, *ContainerSpec,
// *NetworkSpec or *VolumeSpec.
type Spec interface {
	// Kind returns the kind this spec belongs to.
	Kind() Kind
}

// Resource is one manifest document, decoded, validated and with defaults
// applied.
type Resource struct {
	Kind     Kind
	Metadata Metadata
	// Spec is *ImageSpec, *ContainerSpec, *NetworkSpec or *VolumeSpec,
	// matching Kind; see the typed accessors Container, Image, Network and
	// Volume.
	Spec Spec
	// Pos is where the document starts.
	Pos Pos
	// Dir is the absolute directory of the file the resource came from:
	// relative bind sources and env files were resolved against it.
	Dir string

	// fields maps field paths ("spec.ports[1]") to where their values are;
	// the validator uses it to place errors and to tell "written" from
	// "left out".
	fields *positions
	// portSrc[i] is the index in the YAML ports list that
	// ContainerSpec.Ports[i] was expanded from (ranges expand to many).
	portSrc []int
}

// Key returns the resource's kind and name.
func (r *Resource) Key() Key { return Key{Kind: r.Kind, Name: r.Metadata.Name} }

// Name returns metadata.name.
func (r *Resource) Name() string { return r.Metadata.Name }

// Container returns the container spec, or nil when r is another kind.
func (r *Resource) Container() *ContainerSpec { s, _ := r.Spec.(*ContainerSpec); return s }

// Image returns the image spec, or nil when r is another kind.
func (r *Resource) Image() *ImageSpec { s, _ := r.Spec.(*ImageSpec); return s }

// Network returns the network spec, or nil when r is another kind.
func (r *Resource) Network() *NetworkSpec { s, _ := r.Spec.(*NetworkSpec); return s }

// Volume returns the volume spec, or nil when r is another kind.
func (r *Resource) Volume() *VolumeSpec { s, _ := r.Spec.(*VolumeSpec); return s }

// PosOf returns where the value of a field was written, by its path as in
// errors ("spec.image", "spec.ports[1]", "metadata.labels.tier"). ok is
// false when the manifest did not write that field.
func (r *Resource) PosOf(field string) (p Pos, ok bool) {
	return r.fields.get(field)
}

// MarshalJSON writes the resource as a manifest document in normalized form
// (defaults written out, canonical spellings). The output is itself a valid
// manifest: LoadReader reads it back to an equal resource with the same Hash.
func (r *Resource) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // commands and scripts stay readable
	err := enc.Encode(struct {
		APIVersion string   `json:"apiVersion"`
		Kind       Kind     `json:"kind"`
		Metadata   Metadata `json:"metadata"`
		Spec       Spec     `json:"spec"`
	}{APIVersion, r.Kind, r.Metadata, r.Spec})
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), err
}

// ImageSpec declares an image to keep available locally, and how to pull it.
type ImageSpec struct {
	// Ref is the image reference: [registry/]repository[:tag][@digest], e.g.
	// 127.0.0.1:5000/berth/busybox:1.35. Containers whose image is the same
	// reference use this resource's pull policy.
	Ref string `json:"ref" hash:"ref"`
	// PullPolicy says when to pull: ifNotPresent (only when the image is not
	// in the local store), always (at every apply, to follow a moving tag) or
	// never (the image must have been imported or built locally).
	PullPolicy PullPolicy `json:"pullPolicy,omitempty" jsonschema:"enum=ifNotPresent,enum=always,enum=never,default=ifNotPresent"`
	// Platform chooses one image out of a multi-platform index, as
	// os/arch[/variant] (linux/amd64, linux/arm64/v8). Default: the host's.
	Platform Platform `json:"platform,omitzero"`
}

// Kind returns KindImage.
func (*ImageSpec) Kind() Kind { return KindImage }

// PullPolicy says when an image is pulled.
type PullPolicy string

// Pull policies.
const (
	PullIfNotPresent PullPolicy = "ifNotPresent"
	PullAlways       PullPolicy = "always"
	PullNever        PullPolicy = "never"
)

// ContainerSpec declares a container.
//
// Command and Args follow Kubernetes: Command replaces the image's
// ENTRYPOINT (Docker's --entrypoint), Args replaces its CMD (the arguments
// after the image name in docker run). Setting only Command drops the
// image's CMD, as Docker does when the entrypoint is overridden.
type ContainerSpec struct {
	// Image is the reference of the image to run, e.g.
	// 127.0.0.1:5000/berth/busybox:1.35. It is pinned to a digest at apply
	// time; an Image resource with the same ref sets its pull policy.
	Image string `json:"image" hash:"ref"`
	// Command replaces the image's ENTRYPOINT (exec form, no shell).
	Command []string `json:"command,omitempty"`
	// Args replaces the image's CMD (exec form, no shell).
	Args []string `json:"args,omitempty"`
	// Env sets environment variables; values must be strings (quote numbers
	// and booleans). It wins over envFile and the image's ENV.
	Env map[string]string `json:"env,omitempty"`
	// EnvFile names one or more files of KEY=value lines, relative to the
	// manifest's directory, read when the manifests are loaded. Blank lines
	// and lines starting with # are skipped; a value in matching single or
	// double quotes loses them. Later files win over earlier ones.
	EnvFile StringList `json:"envFile,omitempty" hash:"-"`
	// WorkingDir is the absolute directory the command starts in.
	WorkingDir string `json:"workingDir,omitempty"`
	// User runs the command as uid[:gid] or user[:group] (names from the
	// image's /etc/passwd and /etc/group).
	User string `json:"user,omitempty"`
	// Hostname is the container's hostname. Default: its name.
	Hostname string `json:"hostname,omitempty"`
	// Ports publishes container ports on the host: HOST:CONTAINER,
	// IP:HOST:CONTAINER, with /udp for UDP, and equal-length ranges
	// (8000-8010:8000-8010). The container must be on a network.
	Ports Ports `json:"ports,omitempty" hash:"set"`
	// Networks attaches the container to networks, by name or as
	// {name, aliases, ipv4}. The first one carries the default route.
	Networks []NetworkAttachment `json:"networks,omitempty"`
	// Volumes mounts named volumes (pgdata:/var/lib/data), host paths
	// (./conf:/etc/app:ro, relative to the manifest's directory) and tmpfs
	// ({type: tmpfs, target: /tmp, size: 64Mi}).
	Volumes []Mount `json:"volumes,omitempty"`
	// Restart says what happens when the command exits: no, on-failure[:N]
	// (at most N restarts), always, or unless-stopped.
	Restart RestartPolicy `json:"restart,omitzero" jsonschema:"default=no"`
	// Resources limits memory, CPU and the number of processes.
	Resources Resources `json:"resources,omitzero"`
	// Healthcheck runs a command in the container to judge its health.
	Healthcheck *Healthcheck `json:"healthcheck,omitempty"`
	// DependsOn names containers to start first, by name or as
	// {name, condition}; condition is started (default), healthy or
	// completed (exited with status 0).
	DependsOn []Dependency `json:"dependsOn,omitempty" hash:"set"`
	// StopSignal is sent to stop the container (SIGTERM, TERM or 15).
	// Default: the image's STOPSIGNAL, else SIGTERM.
	StopSignal Signal `json:"stopSignal,omitempty"`
	// StopGracePeriod is how long to wait after the stop signal before
	// SIGKILL.
	StopGracePeriod Duration `json:"stopGracePeriod,omitempty" jsonschema:"default=10s"`
	// ReadOnlyRootfs mounts the container's root filesystem read-only.
	ReadOnlyRootfs bool `json:"readOnlyRootfs,omitempty"`
	// CapAdd adds Linux capabilities to Docker's default set (NET_ADMIN or
	// CAP_NET_ADMIN; ALL for every one).
	CapAdd []Capability `json:"capAdd,omitempty" hash:"set"`
	// CapDrop removes capabilities from the default set (ALL for every one).
	CapDrop []Capability `json:"capDrop,omitempty" hash:"set"`
	// Logging bounds the captured output.
	Logging Logging `json:"logging,omitzero"`
}

// Kind returns KindContainer.
func (*ContainerSpec) Kind() Kind { return KindContainer }

// NetworkAttachment connects a container to one network.
type NetworkAttachment struct {
	// Name of the Network resource.
	Name string `json:"name"`
	// Aliases are extra names the container answers to on this network.
	Aliases []string `json:"aliases,omitempty" hash:"set"`
	// IPv4 is a static address inside the network's subnet. Default:
	// allocated.
	IPv4 string `json:"ipv4,omitempty"`
}

// MountType says what a Mount's source is.
type MountType string

// Mount types.
const (
	MountVolume MountType = "volume" // a Volume resource, by name
	MountBind   MountType = "bind"   // a host path
	MountTmpfs  MountType = "tmpfs"  // memory, no source
)

// Mount is one filesystem mounted into a container.
type Mount struct {
	// Type is volume, bind or tmpfs.
	Type MountType `json:"type" jsonschema:"enum=volume,enum=bind,enum=tmpfs"`
	// Source is the Volume resource's name (volume) or the host path (bind;
	// relative to the manifest's directory). Not used by tmpfs.
	Source string `json:"source,omitempty"`
	// Target is the absolute path inside the container.
	Target string `json:"target"`
	// ReadOnly mounts it read-only.
	ReadOnly bool `json:"readOnly,omitempty"`
	// Size limits a tmpfs (256Mi). Default: the kernel's (half of RAM).
	Size Quantity `json:"size,omitempty"`
}

// Restart policy names.
const (
	RestartNo            = "no"
	RestartOnFailure     = "on-failure"
	RestartAlways        = "always"
	RestartUnlessStopped = "unless-stopped"
)

// RestartPolicy says what happens when a container's command exits. In
// manifests it is one string: no, on-failure, on-failure:N, always,
// unless-stopped.
type RestartPolicy struct {
	Name string // RestartNo, RestartOnFailure, RestartAlways or RestartUnlessStopped
	// MaxRetries bounds the restarts of on-failure; 0 means no bound.
	MaxRetries int
}

// Resources are a container's cgroup limits. Zero means unlimited.
type Resources struct {
	// Memory limits memory, as a quantity (256Mi, 1Gi); at least 6Mi.
	Memory Quantity `json:"memory,omitempty"`
	// CPUs limits CPU time, in CPUs: "0.5", 2, or "500m" (millicpus).
	CPUs CPUs `json:"cpus,omitempty"`
	// Pids limits the number of processes and threads.
	Pids int64 `json:"pids,omitempty" jsonschema:"minimum=0"`
}

// Healthcheck runs a command in the container to judge its health. Zero
// durations and retries take the defaults, as Docker's do.
type Healthcheck struct {
	// Command is the probe: a list runs as is (exec form; a leading "CMD" is
	// dropped, "CMD-SHELL" runs the rest in a shell), a string runs as
	// /bin/sh -c STRING. Exit status 0 means healthy.
	Command HealthCommand `json:"command"`
	// Interval between probes.
	Interval Duration `json:"interval,omitempty" jsonschema:"default=30s"`
	// Timeout of one probe; a probe that takes longer fails.
	Timeout Duration `json:"timeout,omitempty" jsonschema:"default=30s"`
	// Retries is how many consecutive failures make the container unhealthy.
	Retries int `json:"retries,omitempty" jsonschema:"minimum=0,default=3"`
	// StartPeriod is a grace period after start during which failures do
	// not count.
	StartPeriod Duration `json:"startPeriod,omitempty" jsonschema:"default=0s"`
}

// Condition says what a dependency must reach before its dependent starts.
type Condition string

// Dependency conditions.
const (
	ConditionStarted   Condition = "started"   // its process is running
	ConditionHealthy   Condition = "healthy"   // its healthcheck passed (it must have one)
	ConditionCompleted Condition = "completed" // it exited with status 0
)

// Dependency is one entry of dependsOn.
type Dependency struct {
	// Name of the Container resource.
	Name string `json:"name"`
	// Condition is started, healthy or completed.
	Condition Condition `json:"condition,omitempty" jsonschema:"enum=started,enum=healthy,enum=completed,default=started"`
}

// Logging bounds a container's captured output: files rotate at MaxSize and
// MaxFiles of them are kept.
type Logging struct {
	// MaxSize of one log file, as a quantity.
	MaxSize Quantity `json:"maxSize,omitempty" jsonschema:"default=10Mi"`
	// MaxFiles is how many log files are kept.
	MaxFiles int `json:"maxFiles,omitempty" jsonschema:"minimum=0,default=3"`
}

// NetworkSpec declares a bridge network.
type NetworkSpec struct {
	// Driver is the network driver; bridge is the only one.
	Driver string `json:"driver,omitempty" jsonschema:"enum=bridge,default=bridge"`
	// Subnet is an IPv4 CIDR (10.89.0.0/24). Default: allocated from
	// berth's pool.
	Subnet string `json:"subnet,omitempty"`
	// Gateway is the bridge's address inside the subnet. Default: the
	// subnet's first address.
	Gateway string `json:"gateway,omitempty"`
	// Internal networks have no route to the outside.
	Internal bool `json:"internal,omitempty"`
	// DNS resolves container names and aliases on this network.
	DNS *bool `json:"dns,omitempty" jsonschema:"default=true"`
}

// Kind returns KindNetwork.
func (*NetworkSpec) Kind() Kind { return KindNetwork }

// DNSEnabled reports whether the network resolves container names (the
// default).
func (n *NetworkSpec) DNSEnabled() bool { return n.DNS == nil || *n.DNS }

// VolumeSpec declares a named volume; its data outlives the containers that
// mount it.
type VolumeSpec struct {
	// Driver is the volume driver; local is the only one.
	Driver string `json:"driver,omitempty" jsonschema:"enum=local,default=local"`
}

// Kind returns KindVolume.
func (*VolumeSpec) Kind() Kind { return KindVolume }
