// Package events carries engine events between berth processes on one data
// root: monitors and engines publish, Engine.Events subscribers receive.
//
// Every subscriber binds a datagram socket in <root>/run/events/; a publisher
// sends each event to every socket there. Delivery takes one sendto per
// subscriber, well under a millisecond, so a watcher sees a container exit as
// soon as its monitor records it. Sockets of dead subscribers refuse the
// datagram and are removed by the publisher that finds them. Socket paths are
// given to the kernel as /proc/self/fd/N/NAME relative to a descriptor of the
// directory, which keeps them short of the 108-byte limit of sun_path however
// deep the data root is.
//
// Delivery is best effort, as with Docker's event stream: a subscriber that
// stops reading loses events after a short timeout rather than stalling
// every publisher. Consumers that must not miss a change re-read state (the
// reconciler is level-based and resyncs).
package events
