// Package schemas holds the JSON Schema (draft 2020-12) of berth's
// manifests, berth.schema.json, generated from the types of package spec.
//
// Editors that speak yaml-language-server pick it up from a modeline at the
// top of a manifest:
//
//	# yaml-language-server: $schema=../schemas/berth.schema.json
//
// The schema describes one document; each document of a stream is checked
// on its own, with the kind deciding which spec applies. The loader
// (spec.Load) remains the authority: it also checks what a schema cannot
// express (references between resources, port conflicts, dependency cycles)
// and explains each problem. TestSchemaUpToDate fails when the checked-in
// file differs from what Generate makes of the current spec types; `make
// schemas` rewrites it.
package schemas
