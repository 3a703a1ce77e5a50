package cli

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/network"
)

// The network flags of run and create: --network, -p/--publish, --ip,
// --network-alias.
func init() { addContainerFlags(addNetworkFlags, applyNetworkFlags) }

func addNetworkFlags(fs *pflag.FlagSet) {
	fs.StringArray("network", nil, `connect to a network: a NAME (repeatable), or none, or host (default "`+network.DefaultNetwork+`")`)
	fs.StringArrayP("publish", "p", nil, "publish a container port: [IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/tcp|udp] (repeatable)")
	fs.String("ip", "", "IPv4 address on the first network (default: allocated)")
	fs.StringArray("network-alias", nil, "DNS name on the first network besides the container's name (repeatable)")
}

// applyNetworkFlags sets the network mode, networks and ports. With no
// --network the container joins the default network, created on first use,
// as docker run joins "bridge".
func applyNetworkFlags(fs *pflag.FlagSet, cfg *engine.ContainerConfig) error {
	nets, _ := fs.GetStringArray("network")
	publish, _ := fs.GetStringArray("publish")
	ip, _ := fs.GetString("ip")
	aliases, _ := fs.GetStringArray("network-alias")
	for _, p := range publish {
		bs, err := parsePublish(p)
		if err != nil {
			return err
		}
		cfg.Ports = append(cfg.Ports, bs...)
	}
	if len(nets) == 0 {
		nets = []string{network.DefaultNetwork}
	}
	for _, n := range nets {
		switch {
		case n == engine.NetworkModeNone || n == engine.NetworkModeHost:
			if len(nets) > 1 {
				return fmt.Errorf("--network %s cannot be combined with other networks: %w", n, engine.ErrInvalid)
			}
			if len(cfg.Ports) > 0 || ip != "" || len(aliases) > 0 {
				return fmt.Errorf("--network %s: -p, --ip and --network-alias need a bridge network: %w", n, engine.ErrInvalid)
			}
			cfg.NetworkMode = n
			return nil
		case strings.HasPrefix(n, "container:"):
			return fmt.Errorf("--network %s: joining another container's network: %w", n, engine.ErrUnsupported)
		case n == "":
			return fmt.Errorf("--network: empty network name: %w", engine.ErrInvalid)
		}
		cfg.Networks = append(cfg.Networks, engine.EndpointConfig{Network: n})
	}
	if ip != "" {
		if _, err := netip.ParseAddr(ip); err != nil {
			return fmt.Errorf("--ip %q: not an IPv4 address: %w", ip, engine.ErrInvalid)
		}
	}
	cfg.NetworkMode = engine.NetworkModeBridge
	cfg.Networks[0].IPv4 = ip
	if len(aliases) > 0 {
		cfg.Networks[0].Aliases = aliases
	}
	return nil
}

// parsePublish parses one -p value into bindings, one per port of a range:
// 8080:80, 127.0.0.1:8080:80, 127.0.0.1::80 and 80 (any free host port),
// 8080-8081:80-81, with /tcp (the default) or /udp.
func parsePublish(s string) ([]engine.PortBinding, error) {
	bad := func(why string) error { return fmt.Errorf("-p %q: %s: %w", s, why, engine.ErrInvalid) }
	spec, proto, hasProto := strings.Cut(s, "/")
	if !hasProto {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" {
		return nil, bad("protocol must be tcp or udp")
	}
	var hostIP, hostPorts, ctrPorts string
	if strings.HasPrefix(spec, "[") { // [::1]:8080:80
		end := strings.Index(spec, "]")
		if end < 0 || len(spec) < end+2 || spec[end+1] != ':' {
			return nil, bad("unterminated [address]")
		}
		hostIP, spec = spec[1:end], spec[end+2:]
	}
	parts := strings.Split(spec, ":")
	switch {
	case len(parts) == 1:
		ctrPorts = parts[0]
	case len(parts) == 2:
		hostPorts, ctrPorts = parts[0], parts[1]
	case len(parts) == 3 && hostIP == "":
		hostIP, hostPorts, ctrPorts = parts[0], parts[1], parts[2]
	default:
		return nil, bad("want [IP:][HOST_PORT:]CONTAINER_PORT")
	}
	if hostIP != "" {
		if _, err := netip.ParseAddr(hostIP); err != nil {
			return nil, bad("host IP " + strconv.Quote(hostIP) + " is not an address")
		}
	}
	cLow, cHigh, err := parsePortRange(ctrPorts)
	if err != nil {
		return nil, bad("container port: " + err.Error())
	}
	hLow, hHigh := uint16(0), uint16(0)
	if hostPorts != "" {
		if hLow, hHigh, err = parsePortRange(hostPorts); err != nil {
			return nil, bad("host port: " + err.Error())
		}
		if hHigh-hLow != cHigh-cLow {
			return nil, bad("the host and container port ranges differ in size")
		}
	}
	var out []engine.PortBinding
	for i := 0; i <= int(cHigh-cLow); i++ {
		b := engine.PortBinding{HostIP: hostIP, ContainerPort: cLow + uint16(i), Protocol: proto}
		if hLow != 0 {
			b.HostPort = hLow + uint16(i)
		}
		out = append(out, b)
	}
	return out, nil
}

func parsePortRange(s string) (low, high uint16, err error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err := strconv.ParseUint(a, 10, 16)
	if err != nil || lo == 0 {
		return 0, 0, fmt.Errorf("%q is not a port", a)
	}
	hi := lo
	if isRange {
		if hi, err = strconv.ParseUint(b, 10, 16); err != nil || hi < lo {
			return 0, 0, fmt.Errorf("%q is not a port range", s)
		}
	}
	return uint16(lo), uint16(hi), nil
}
