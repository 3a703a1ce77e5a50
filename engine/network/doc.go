// Package network is berth's network manager: bridge networks with an IP pool,
// a veth pair per container per network, outbound NAT, published ports,
// isolation between networks and name resolution, all with netlink and
// nftables (no shelling out).
//
// # State
//
// Everything berth decides is in two JSON files under the manager's root,
// changed under one flock. networks.json holds the networks and is written
// durably. attachments.json holds per container its endpoints (network,
// interface, host veth, address) and published ports: it is replaced
// atomically but not fsynced, and it carries the boot ID, so that after a
// reboot it reads as empty, as the kernel then is. The kernel objects are
// derived from these records, and every record is written before the
// objects it names are created and removed after they are gone, so after a
// kill -9 at any point GC finds whatever is left. IP allocations are the
// endpoints themselves: an address is taken while a container record holds
// it, and the file lock makes two berth processes allocate one after the
// other.
//
// # Kernel objects
//
// A network is a Linux bridge named "berth" + 10 hex digits of its ID with the
// gateway address on it, a fixed MAC and an alias naming the network, its
// table and its data root: making a network also removes the bridges and
// tables of data roots that no longer exist (deleted without removing their
// networks first). A container endpoint is a veth pair: the host side ("berthv" + 9
// hex) is a port of the bridge (hairpin on), the other side is created
// directly in the container's network namespace as eth0, eth1, ... with the
// bridge's MTU, which is the MTU of the host's default-route interface when
// the bridge was made. The namespace is a bind-mounted nsfs file under
// <run>/netns/<container-id>: Sandbox makes it, restarts keep it and their
// addresses. Detach does not delete veths, which costs an RCU grace period
// each (15-40 ms here): it sets the host sides down and unmounts the sandbox,
// and the kernel destroys the namespace with both ends of every veth in the
// background. Threads that enter a container's namespace go back to the
// host's before they end: the main thread, which cannot end, would otherwise
// keep a namespace alive for as long as the process lives.
//
// # Subnets
//
// A network without a subnet gets the first free /24 of 172.18.0.0/16 ..
// 172.31.0.0/16 (then 10.89.0.0/16 .. 10.99.0.0/16) that overlaps neither a
// route of the host nor another network of this data root; the default
// network "bridge" prefers 172.17.0.0/16, as Docker's docker0 does. Choices
// are made under a host-wide lock (/run/lock/berth-network.lock), because two
// data roots share one routing table. A subnet is routed only while its bridge
// exists: after a reboot, another data root may take the subnet of a network
// whose bridge is not back yet, and re-creating that bridge then fails with
// ErrConflict rather than putting two bridges on one subnet.
//
// # nftables
//
// One table per data root (family ip): "berth" for /var/lib/berth, and
// "berth_" + 8 hex digits of the data root's hash for any other, so that
// parallel tests never touch each other's rules. Its content is a pure
// function of the state file and is replaced in one netlink transaction on
// every change (so it is never half-written); the table is deleted when the
// last network goes. Base chains use the standard priorities (dstnat, filter,
// srcnat, raw) and accept by default: berth only ever drops what it must, and
// it never touches other tables. The rules:
//
//   - masquerade of traffic leaving a non-internal network through any other
//     interface (outbound NAT);
//   - published ports as DNAT in prerouting and output for local destination
//     addresses (optionally one host address);
//   - host loopback to a published port: route_localnet on the bridge plus
//     masquerade of DNATed locally-sourced traffic, with a raw-priority drop
//     of packets for 127.0.0.0/8 arriving from any berth bridge, so that
//     route_localnet does not expose the host's loopback services;
//   - hairpin: DNATed traffic from a network back into it is masqueraded, so
//     replies return through the host;
//   - isolation: forwarding between a berth bridge and any other berth bridge
//     is dropped unless it is a published port (ct status dnat);
//   - internal networks: nothing is forwarded in or out, and of the host only
//     the gateway address is reachable (for DNS).
//
// Port publishing uses these kernel rules instead of a userland proxy
// (docker-proxy): no process per port, no copy of every byte, UDP works the
// same, and the source address of outside clients is preserved. The price:
// a published port holds no socket, so CheckPorts refuses a port that a host
// process holds or another container publishes, but a process that binds the
// port later is shadowed for traffic the rules catch. net.ipv4.ip_forward is
// turned on while a non-internal network exists, and never turned off.
//
// # Name resolution
//
// Containers on a network with DNS get "nameserver <gateway>" in their
// resolv.conf, with the host's search and options lines; containers on
// networks without DNS get the host's nameservers that a container can reach
// (not loopback; systemd-resolved's upstreams instead of its stub; Google's
// public resolvers when nothing is left, as Docker does). The berth-dns
// helper (this binary re-executed, like Podman's aardvark-dns) listens on
// every DNS network's gateway, UDP and TCP port 53. A client must be on the
// network whose gateway it asks; it gets the names of every network its
// container shares (container name, aliases, short ID; A and PTR; other
// types of a known name are answered with no data), and all other names are
// forwarded to the host's resolvers (loopback ones included: the helper runs
// in the host's namespace), with their answer or SERVFAIL. The helper is
// started on demand by the first attach to a DNS network, detached in its
// own session, and records its pid and start time in <run>/dns/helper.json.
// The manager writes the records to <run>/dns/records.json and tells the
// helper to reload over an abstract unix socket named after the table, and
// waits for its answer, so a container started right after Attach finds its
// peers; binding that socket also makes the helper a singleton per data
// root. SIGHUP reloads too. When nothing is left to serve the helper exits,
// and GC restarts one that died.
package network
