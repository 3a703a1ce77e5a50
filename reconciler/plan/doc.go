// Package plan computes what berth would change: a pure function from the
// desired state (manifests converted to engine configurations, with image
// references already resolved to digests) and the observed state (what the
// engine reports for the objects berth owns) to an ordered list of changes.
//
// Nothing here does I/O or talks to the engine, so that `berth plan`,
// `berth apply` and `berth watch` share exactly one definition of "what is
// different", and so that it can be tested with before/after tables.
//
// The model follows Terraform's: an [Action] is a rune whose value is its
// display symbol (create '+', update in place '~', replace '±', shown as -/+,
// delete '-'); every [Change] carries the field-level differences that led to
// it, which of them force replacement, and human-readable reasons. Drift
// (an object changed or removed outside berth, or stopped when it should run)
// is an attribute of a change, not an action of its own.
//
// Whether a resource is unchanged is decided first by its spec hash (the
// label [engine.LabelSpecHash] that berth sets on every object it creates): an
// object whose hash equals the desired one, or the desired spec's hash under
// the older hash version the object carries, is up to date except for what
// can drift without the manifests changing (its image digest, its state, the
// fields that can be updated in place). Only when the hash differs are the
// full configurations compared field by field.
package plan
