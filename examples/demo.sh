#!/usr/bin/env bash
# berth demo (foundation stage): validates the example manifests, then shows
# the report for a directory with three mistakes spread over two files.
set -uo pipefail
cd "$(dirname "$0")/.."
berth=bin/berth

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "berth validate examples/"
$berth validate examples/ || exit 1

step "berth validate spec/testdata/demo-broken/   (three mistakes in two files)"
$berth validate spec/testdata/demo-broken/
echo "(exit code $?: every error at once, with file:line:col and field path)"

step "the same report for machines: berth validate -o json"
$berth validate -o json spec/testdata/demo-broken/ | head -20
echo "..."
exit 0
