// Package reconciler makes a host run what a directory of manifests
// describes. One code path serves `berth plan`, `berth apply` and
// `berth watch`:
//
//	observe  the engine's real state for the project: the containers,
//	         networks and volumes labelled as the project's (the engine
//	         re-checks them against the kernel; nothing is cached here),
//	         and the local images
//	convert  the manifests into engine configurations, image references
//	         resolved to digests per pull policy (convert.go, like runc's
//	         specconv)
//	diff     plan.Diff, a pure function of the two
//	execute  the plan's changes, independent ones in parallel, dependents
//	         after what they depend on (apply.go)
//
// Ownership: everything berth creates from manifests carries the labels
// engine.LabelProject, LabelKind, LabelName and LabelSpecHash, and berth
// only ever touches objects labelled with its project. Engine object names
// are deterministic: <project>-<name>. Containers get their manifest name
// as a network alias, so they reach each other by the names in the
// manifests.
//
// Prune: owned resources that left the manifests are deleted, except named
// volumes, which are kept unless PruneVolumes is set. Images are shared
// between projects and with everything else on the host: berth pulls them
// but never deletes them (`berth image prune` does). An empty or unreadable
// manifest set never means "delete everything": Plan refuses, and says why,
// unless AllowEmpty is set or the caller destroys explicitly.
//
// Apply takes a per-project lock under the data root (projects/<project>/
// apply.lock), so one apply (or watch) at a time converges a project;
// another waits up to its lock timeout and then fails, naming the holder.
//
// Watch (watch.go) is controller-runtime's loop for one project: triggers
// (manifest changes, container events, a jittered resync) enqueue resource
// keys; a key is never reconciled twice at once; failures back off per key
// exponentially; terminal errors wait for the manifest to change; status
// conditions (Ready, Reconciling, Stalled) are kept per resource and
// persisted for `berth status`.
package reconciler
