// Package e2e drives the berth binary against the real engine, as root:
// every example through plan, apply, an env change, destroy, and a check
// that nothing is left on the host; berth watch repairing drift; and
// berth apply killed at random moments. Its tests skip without root and
// fail instead under BERTH_TEST_ROOT=1. It is not in the Makefile's
// RACE_PKGS.
package e2e
