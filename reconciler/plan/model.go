package plan

import (
	"strings"

	"berth.dev/berth/engine"
)

// Kind is a manifest kind, spelled as in the manifests and in the
// [engine.LabelKind] label.
type Kind string

// Kinds, in the order their changes are applied.
const (
	KindNetwork   Kind = "Network"
	KindVolume    Kind = "Volume"
	KindImage     Kind = "Image"
	KindContainer Kind = "Container"
)

// rank orders kinds: the things containers use come first.
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

// Key names one resource of a project.
type Key struct {
	Kind Kind   `json:"kind"`
	Name string `json:"name"`
}

// String returns "kind/name" in lower case for the kind: container/web.
func (k Key) String() string { return strings.ToLower(string(k.Kind)) + "/" + k.Name }

// Less orders keys by kind rank, then name.
func (k Key) Less(o Key) bool {
	if k.Kind != o.Kind {
		return k.Kind.rank() < o.Kind.rank()
	}
	return k.Name < o.Name
}

// Desired is what the manifests ask for, converted to engine configurations.
// Names are manifest names; the configs carry the engine object names and
// the ownership labels.
type Desired struct {
	Project    string      `json:"project"`
	Networks   []Network   `json:"networks,omitempty"`
	Volumes    []Volume    `json:"volumes,omitempty"`
	Images     []Image     `json:"images,omitempty"`
	Containers []Container `json:"containers,omitempty"`
}

// Empty reports whether nothing at all is desired.
func (d *Desired) Empty() bool {
	return len(d.Networks)+len(d.Volumes)+len(d.Images)+len(d.Containers) == 0
}

// Hashes are a resource's spec hashes: Current (version-prefixed, as
// "v1:<hex>") and the same spec under older hash versions, so that an object
// created by an older berth is recognised as up to date.
type Hashes struct {
	Current string   `json:"current"`
	Prior   []string `json:"prior,omitempty"`
}

// Matches reports whether an observed hash label says "same spec".
func (h Hashes) Matches(observed string) bool {
	if observed == "" {
		return false
	}
	if observed == h.Current {
		return true
	}
	for _, p := range h.Prior {
		if observed == p {
			return true
		}
	}
	return false
}

// Network is one desired network.
type Network struct {
	Name   string               `json:"name"`
	Hash   Hashes               `json:"hash"`
	Config engine.NetworkConfig `json:"config"`
}

// Volume is one desired named volume.
type Volume struct {
	Name   string              `json:"name"`
	Hash   Hashes              `json:"hash"`
	Config engine.VolumeConfig `json:"config"`
}

// Pull policies, as the manifests spell them.
const (
	PullIfNotPresent = "ifNotPresent"
	PullAlways       = "always"
	PullNever        = "never"
)

// Image is one image the desired containers need, declared by an Image
// manifest or implied by a container's image reference. Images are keyed by
// Name: the Image manifest's name, or the reference itself when implied.
type Image struct {
	Name       string           `json:"name"`
	Ref        string           `json:"ref"` // as written: registry/repo:tag or repo@digest
	PullPolicy string           `json:"pullPolicy"`
	Platform   *engine.Platform `json:"platform,omitempty"`
	Declared   bool             `json:"declared,omitempty"` // from an Image manifest
	// Digest is the manifest digest the reference resolved to (remotely, or
	// the local image's under ifNotPresent and never); empty for a local
	// image that was imported and never pushed.
	Digest string `json:"digest,omitempty"`
	// ID is the local image's config digest when the local image is the one
	// to use (its digest matches, or it has none).
	ID string `json:"id,omitempty"`
	// Pin is what containers are created from: repo@digest, or the image ID
	// for a local-only image.
	Pin string `json:"pin"`
}

// Dependency conditions of dependsOn.
const (
	ConditionStarted   = "started"
	ConditionHealthy   = "healthy"
	ConditionCompleted = "completed"
)

// Dependency is one dependsOn entry: the container Name must reach Condition
// before this one is started.
type Dependency struct {
	Name      string `json:"name"`
	Condition string `json:"condition"`
}

// Container is one desired container.
type Container struct {
	Name string `json:"name"`
	Hash Hashes `json:"hash"`
	// Config is what Containers.Create receives: Name is the engine name,
	// Image the pin of Image.
	Config engine.ContainerConfig `json:"config"`
	// Image is the Name of the desired Image it runs.
	Image     string       `json:"image"`
	DependsOn []Dependency `json:"dependsOn,omitempty"`
	// Networks and Volumes are the manifest names of the networks it joins
	// and the named volumes it mounts.
	Networks []string `json:"networks,omitempty"`
	Volumes  []string `json:"volumes,omitempty"`
}

// Observed is what the engine reports: the objects labelled as owned by the
// project (networks, volumes, containers, all states) and the local images.
type Observed struct {
	Containers []engine.Container `json:"containers,omitempty"`
	Networks   []engine.Network   `json:"networks,omitempty"`
	Volumes    []engine.Volume    `json:"volumes,omitempty"`
	Images     []engine.Image     `json:"images,omitempty"`
	// Applied lists what berth had applied before, as its status records
	// say. It only words reasons: a resource that is missing now but was
	// applied before was removed outside berth.
	Applied []Key `json:"applied,omitempty"`
}

// Labels berth sets besides the engine's ownership labels.
const (
	// LabelDependsOn lists a container's dependsOn targets, comma separated,
	// so that deletions run in reverse order even when the manifests are gone.
	LabelDependsOn = "dev.berth.depends-on"
)

// keyOf returns the key an observed object's labels give it.
func keyOf(labels map[string]string) (Key, bool) {
	k, n := labels[engine.LabelKind], labels[engine.LabelName]
	if k == "" || n == "" {
		return Key{}, false
	}
	return Key{Kind: Kind(k), Name: n}, true
}
