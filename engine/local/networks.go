package local

import (
	"context"
	"fmt"

	"berth.dev/berth/engine"
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

// networkUsers maps the network references in container configs (names or
// IDs) to the containers that carry them.
func (e *Engine) networkUsers(ctx context.Context) (map[string][]string, error) {
	if e.containers == nil {
		return nil, nil
	}
	cs, err := e.containers.List(ctx, engine.ListContainersOptions{All: true})
	if err != nil {
		return nil, err
	}
	users := map[string][]string{}
	for _, c := range cs {
		for _, ep := range c.Config.Networks {
			users[ep.Network] = append(users[ep.Network], c.ID)
		}
	}
	return users, nil
}
