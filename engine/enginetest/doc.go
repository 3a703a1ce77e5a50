// Package enginetest holds what tests of every engine implementation share:
// the RequireRoot and RequireFeature gates, and the engine conformance suite
// that the real engine and the in-memory fake both must pass.
package enginetest
