package spec

import (
	"net/netip"
	"time"
)

// Defaults that Default writes out.
const (
	DefaultStopGracePeriod     = Duration(10 * time.Second)
	DefaultHealthInterval      = Duration(30 * time.Second)
	DefaultHealthTimeout       = Duration(30 * time.Second)
	DefaultHealthRetries       = 3
	DefaultLogMaxSize          = Quantity(10 << 20)
	DefaultLogMaxFiles         = 3
	DefaultNetworkDriver       = "bridge"
	DefaultVolumeDriver        = "local"
	DefaultPullPolicy          = PullIfNotPresent
	DefaultRestart             = RestartNo
	DefaultDependencyCondition = ConditionStarted
)

// Default fills in every default of r, in place. It is the only place
// defaults are decided; Load calls it for every resource, so that a value
// left out and the same value written out are indistinguishable
// afterwards (and hash the same). It is idempotent.
func Default(r *Resource) {
	switch s := r.Spec.(type) {
	case *ImageSpec:
		if s.PullPolicy == "" {
			s.PullPolicy = DefaultPullPolicy
		}
	case *ContainerSpec:
		defaultContainer(r.Metadata.Name, s)
	case *NetworkSpec:
		if s.Driver == "" {
			s.Driver = DefaultNetworkDriver
		}
		if s.DNS == nil {
			on := true
			s.DNS = &on
		}
		if s.Gateway == "" && s.Subnet != "" {
			if p, err := netip.ParsePrefix(s.Subnet); err == nil && p.Addr().Is4() {
				s.Gateway = firstHost(p.Masked()).String()
			}
		}
	case *VolumeSpec:
		if s.Driver == "" {
			s.Driver = DefaultVolumeDriver
		}
	}
}

func defaultContainer(name string, c *ContainerSpec) {
	if c.Hostname == "" {
		c.Hostname = name
	}
	if c.Restart.Name == "" {
		c.Restart = RestartPolicy{Name: DefaultRestart}
	}
	if c.StopGracePeriod == 0 {
		c.StopGracePeriod = DefaultStopGracePeriod
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = ProtocolTCP
		}
	}
	if h := c.Healthcheck; h != nil {
		if h.Interval == 0 {
			h.Interval = DefaultHealthInterval
		}
		if h.Timeout == 0 {
			h.Timeout = DefaultHealthTimeout
		}
		if h.Retries == 0 {
			h.Retries = DefaultHealthRetries
		}
	}
	for i := range c.DependsOn {
		if c.DependsOn[i].Condition == "" {
			c.DependsOn[i].Condition = DefaultDependencyCondition
		}
	}
	if c.Logging.MaxSize == 0 {
		c.Logging.MaxSize = DefaultLogMaxSize
	}
	if c.Logging.MaxFiles == 0 {
		c.Logging.MaxFiles = DefaultLogMaxFiles
	}
}
