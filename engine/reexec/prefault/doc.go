// Package prefault maps, at the start of every berth process, the pages the
// process is about to fault in one by one: the binary's code and read-only
// data, and the first of its heap.
//
// On the paravirtualized machines berth is measured on, a page fault is a
// trip through the hypervisor (15 µs for an anonymous page here); a Go
// program as large as berth takes several hundred of them while its
// packages initialize, a third of its start-up. One madvise(2) with
// MADV_POPULATE_READ over the code (already in the page cache: nothing is
// read) and one with MADV_POPULATE_WRITE over the next stretch of heap cost
// a fraction of that: berth version and berth plan start 10 to 15% faster,
// and a container's monitor and init use 5 to 10% less CPU.
//
// It works from its initializer, which runs as early as Go allows: the
// package imports only syscall and unsafe, and berth.dev/* sorts first
// among the packages ready to initialize (see engine/container/shim's
// documentation). Keep it that way. Errors are ignored: the pages then
// fault in as usual (kernels before 5.14 have no MADV_POPULATE_*).
package prefault
