package spec

import (
	"cmp"
	"slices"
)

// Set is a validated collection of resources, as Load returns it. It is
// read-only once built and safe for concurrent readers.
type Set struct {
	resources []*Resource // creation order: by kind (see Kinds), then name
	index     map[Key]*Resource
	files     []string
	images    map[string]*Resource // normalized image ref -> Image resource
}

func newSet(rs []*Resource, files []string) *Set {
	s := &Set{resources: rs, index: make(map[Key]*Resource, len(rs)), files: files, images: map[string]*Resource{}}
	slices.SortFunc(s.resources, func(a, b *Resource) int {
		return cmp.Or(cmp.Compare(a.Kind.rank(), b.Kind.rank()), cmp.Compare(a.Name(), b.Name()))
	})
	for _, r := range s.resources {
		s.index[r.Key()] = r
		if im := r.Image(); im != nil {
			if ref, err := NormalizeImageRef(im.Ref); err == nil {
				if _, dup := s.images[ref]; !dup {
					s.images[ref] = r
				}
			}
		}
	}
	return s
}

// Len returns the number of resources.
func (s *Set) Len() int { return len(s.resources) }

// Resources returns every resource in creation order: networks, volumes,
// images, then containers, each kind sorted by name. The order does not
// depend on files or their order.
func (s *Set) Resources() []*Resource { return slices.Clone(s.resources) }

// Get returns the resource with key k.
func (s *Set) Get(k Key) (*Resource, bool) {
	r, ok := s.index[k]
	return r, ok
}

// Kind returns the resources of kind k, sorted by name.
func (s *Set) Kind(k Kind) []*Resource { return slices.Clone(s.byKind(k)) }

func (s *Set) byKind(k Kind) []*Resource {
	lo, _ := slices.BinarySearchFunc(s.resources, k.rank(), func(r *Resource, rank int) int { return cmp.Compare(r.Kind.rank(), rank) })
	hi, _ := slices.BinarySearchFunc(s.resources, k.rank()+1, func(r *Resource, rank int) int { return cmp.Compare(r.Kind.rank(), rank) })
	return s.resources[lo:hi]
}

func (s *Set) names(k Kind) []string {
	rs := s.byKind(k)
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Name()
	}
	return out
}

// Files returns the manifest files that were read, in the order read
// (sorted within each directory), named as they were found.
func (s *Set) Files() []string { return slices.Clone(s.files) }

// ImageFor returns the Image resource whose ref names the same image as
// ref (after normalization: busybox and docker.io/library/busybox:latest
// are the same). A container uses that resource's pull policy and
// platform.
func (s *Set) ImageFor(ref string) (*Resource, bool) {
	n, err := NormalizeImageRef(ref)
	if err != nil {
		return nil, false
	}
	r, ok := s.images[n]
	return r, ok
}
