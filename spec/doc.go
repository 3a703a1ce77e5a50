// Package spec reads berth's manifests: Kubernetes-style YAML documents of
// kind Image, Container, Network and Volume, many per file, many files per
// directory.
//
//	set, err := spec.Load("manifests/")
//	if err != nil {
//		for _, fe := range spec.FieldErrors(err) {
//			fmt.Println(fe) // web.yaml:12:7: spec.ports[1]: port 70000 out of range
//		}
//		return err
//	}
//	for _, r := range set.Resources() { // networks, volumes, images, containers
//		if c := r.Container(); c != nil {
//			fmt.Println(r.Key(), c.Image, spec.Hash(r))
//		}
//	}
//
// Loading is strict: unknown fields, wrong types, bad values, duplicate
// keys and duplicate resources are errors, and every error of a whole
// directory is reported at once, each at its file, line, column and field
// path. Defaults are applied in one place (Default), so that the typed specs
// the reconciler converts into engine configurations are complete, and
// every resource has a versioned canonical hash (Hash, HashWith).
//
// The package is pure data: it imports nothing else of berth's, performs no
// system calls beyond reading files, and builds on any OS. README.md in this
// directory is the manifest reference.
package spec
