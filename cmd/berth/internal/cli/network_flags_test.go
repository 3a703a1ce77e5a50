package cli

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"

	"berth.dev/berth/engine"
)

func TestParsePublish(t *testing.T) {
	tests := []struct {
		in   string
		want []engine.PortBinding
		err  error
	}{
		{in: "8080:80", want: []engine.PortBinding{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}},
		{in: "127.0.0.1:8080:80/udp", want: []engine.PortBinding{{HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Protocol: "udp"}}},
		{in: "127.0.0.1::80", want: []engine.PortBinding{{HostIP: "127.0.0.1", ContainerPort: 80, Protocol: "tcp"}}},
		{in: "80", want: []engine.PortBinding{{ContainerPort: 80, Protocol: "tcp"}}},
		{in: "[::1]:53:53/UDP", want: []engine.PortBinding{{HostIP: "::1", HostPort: 53, ContainerPort: 53, Protocol: "udp"}}},
		{in: "8080-8082:80-82", want: []engine.PortBinding{
			{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
			{HostPort: 8081, ContainerPort: 81, Protocol: "tcp"},
			{HostPort: 8082, ContainerPort: 82, Protocol: "tcp"},
		}},
		{in: "7000-7001", want: []engine.PortBinding{{ContainerPort: 7000, Protocol: "tcp"}, {ContainerPort: 7001, Protocol: "tcp"}}},
		{in: "8080-8081:80", err: engine.ErrInvalid},
		{in: "8080:80/sctp", err: engine.ErrInvalid},
		{in: "x:80", err: engine.ErrInvalid},
		{in: "nonsense:8080:80", err: engine.ErrInvalid},
		{in: "1:2:3:4", err: engine.ErrInvalid},
		{in: "0:80", err: engine.ErrInvalid},
		{in: "70000:80", err: engine.ErrInvalid},
		{in: "90-80", err: engine.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parsePublish(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestNetworkFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want engine.ContainerConfig
		err  error
	}{
		{
			name: "default network",
			want: engine.ContainerConfig{NetworkMode: "bridge", Networks: []engine.EndpointConfig{{Network: "bridge"}}},
		},
		{
			name: "networks, address, aliases, ports",
			args: []string{"--network", "front", "--network", "back", "--ip", "10.1.2.3", "--network-alias", "web", "--network-alias", "www", "-p", "8080:80", "--publish", "53:53/udp"},
			want: engine.ContainerConfig{
				NetworkMode: "bridge",
				Networks:    []engine.EndpointConfig{{Network: "front", IPv4: "10.1.2.3", Aliases: []string{"web", "www"}}, {Network: "back"}},
				Ports:       []engine.PortBinding{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}, {HostPort: 53, ContainerPort: 53, Protocol: "udp"}},
			},
		},
		{name: "none", args: []string{"--network", "none"}, want: engine.ContainerConfig{NetworkMode: "none"}},
		{name: "host", args: []string{"--network", "host"}, want: engine.ContainerConfig{NetworkMode: "host"}},
		{name: "host and ports", args: []string{"--network", "host", "-p", "80:80"}, err: engine.ErrInvalid},
		{name: "none and a network", args: []string{"--network", "none", "--network", "front"}, err: engine.ErrInvalid},
		{name: "bad ip", args: []string{"--ip", "nope"}, err: engine.ErrInvalid},
		{name: "container mode", args: []string{"--network", "container:x"}, err: engine.ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
			addNetworkFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			var cfg engine.ContainerConfig
			err := applyNetworkFlags(fs, &cfg)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, cfg); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
