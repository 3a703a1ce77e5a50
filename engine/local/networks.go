package local

import (
	"context"
	"fmt"

	"berth.dev/berth/engine/network"
)

// openNetworks opens the network manager: records under networks/, netns
// files and the DNS helper's files under run/, and the nftables table named
// after the data root. Which containers use a network comes live from the
// container runtime (set later by openContainers), so a network in use, or
// configured into a stopped container, cannot be removed.
func openNetworks(ctx context.Context, e *Engine) error {
	opts := []network.Option{
		network.WithRunDir(e.path("run")),
		network.WithTable(network.TableName(e.cfg.DataRoot)),
		network.WithLogger(e.cfg.Log),
		network.WithUsers(e.networkUsers),
	}
	if e.cfg.ResolvConf != "" {
		opts = append(opts, network.WithResolvConf(e.cfg.ResolvConf))
	}
	m, err := network.Open(e.path("networks"), opts...)
	if err != nil {
		return fmt.Errorf("networks: %w", err)
	}
	e.networks = m
	return nil
}
