package spec

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDefault(t *testing.T) {
	on := true
	tests := []struct {
		name string
		in   Resource
		want Spec
	}{
		{"image", Resource{Kind: KindImage, Spec: &ImageSpec{Ref: "busybox"}},
			&ImageSpec{Ref: "busybox", PullPolicy: PullIfNotPresent}},
		{"network", Resource{Kind: KindNetwork, Spec: &NetworkSpec{Subnet: "10.1.2.0/24"}},
			&NetworkSpec{Driver: "bridge", Subnet: "10.1.2.0/24", Gateway: "10.1.2.1", DNS: &on}},
		{"network without subnet", Resource{Kind: KindNetwork, Spec: &NetworkSpec{}},
			&NetworkSpec{Driver: "bridge", DNS: &on}},
		{"volume", Resource{Kind: KindVolume, Spec: &VolumeSpec{}}, &VolumeSpec{Driver: "local"}},
		{"container", Resource{Kind: KindContainer, Metadata: Metadata{Name: "web"}, Spec: &ContainerSpec{
			Image:       "busybox",
			Ports:       Ports{{HostPort: 80, ContainerPort: 80}},
			Healthcheck: &Healthcheck{Command: HealthCommand{"true"}, Retries: 7},
			DependsOn:   []Dependency{{Name: "db"}, {Name: "seed", Condition: ConditionCompleted}},
		}}, &ContainerSpec{
			Image:           "busybox",
			Hostname:        "web",
			Ports:           Ports{{HostPort: 80, ContainerPort: 80, Protocol: "tcp"}},
			Restart:         RestartPolicy{Name: "no"},
			Healthcheck:     &Healthcheck{Command: HealthCommand{"true"}, Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout, Retries: 7},
			DependsOn:       []Dependency{{Name: "db", Condition: ConditionStarted}, {Name: "seed", Condition: ConditionCompleted}},
			StopGracePeriod: DefaultStopGracePeriod,
			Logging:         Logging{MaxSize: 10 << 20, MaxFiles: 3},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.in
			Default(&r)
			if diff := cmp.Diff(tc.want, r.Spec); diff != "" {
				t.Errorf("Default (-want +got):\n%s", diff)
			}
			h := Hash(&r)
			Default(&r)
			if diff := cmp.Diff(tc.want, r.Spec); diff != "" || Hash(&r) != h {
				t.Errorf("Default is not idempotent:\n%s", diff)
			}
		})
	}
}
