// Package engine defines berth's container engine: the interfaces that the
// reconciler, the daemon and the CLI program against, the configuration and
// status types they exchange, and the error classes callers branch on.
//
// The engine never imports spec or reconciler: it takes its own configuration
// types, so that the same engine serves manifests, imperative verbs
// (berth run) and the Docker-compatible API alike.
//
// Implementations: engine/local (in-process, the embedded default, built from
// engine/image, engine/container, engine/network and engine/volume) and the
// in-memory fake in engine/enginetest, which must pass the same conformance
// suite as the real engine.
package engine
