#!/usr/bin/env bash
# make demo: on a fresh machine, run the demo app of examples/demo with berth.
#
#   1. check the manifests (berth validate),
#   2. make a busybox image locally (Debian's static busybox, no internet) and
#      push it to berth's own registry, started in the background on
#      127.0.0.1:5000 with a temporary root,
#   3. show the plan, then berth apply --wait examples/demo: a web server on a
#      published port serving a page from a named volume that a one-shot
#      container writes first, and a client that fetches it by name over a
#      network; healthchecks and dependsOn order it all,
#   4. check that http://127.0.0.1:8080/ answers and that a second plan is
#      empty,
#   5. stop the registry. The app keeps running: `berth destroy examples/demo`
#      removes it.
#
# The default data root is used (BERTH_DATA_ROOT overrides it), so that
# `berth ps`, `berth logs` and the rest see the demo afterwards. `make demo`
# builds bin/berth first; run from the repository root, as root.
set -euo pipefail
cd "$(dirname "$0")/.."

berth=${BERTH:-$PWD/bin/berth}
image=127.0.0.1:5000/berth/busybox:1.35
registry_addr=127.0.0.1:5000
app=examples/demo

if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then
	bold=$'\e[1m' dim=$'\e[2m' reset=$'\e[0m'
else
	bold='' dim='' reset=''
fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$reset"; }
say() { printf '%s%s%s\n' "$dim" "$*" "$reset"; }
show() { printf '%s$ %s%s\n' "$bold" "$*" "$reset"; "$@"; }

if [[ $(id -u) != 0 ]]; then
	echo "demo: berth runs containers, bridges and cgroups: run it as root (sudo make demo)" >&2
	exit 1
fi
[[ -x $berth ]] || { echo "demo: $berth is missing: run make build" >&2; exit 1; }
if ! [[ -x /bin/busybox ]] || ldd /bin/busybox >/dev/null 2>&1; then
	bash .ci/deps # installs busybox-static
fi

work=$(mktemp -d /tmp/berth-demo.XXXXXX)
registry_pid=
cleanup() {
	if [[ -n $registry_pid ]]; then
		kill "$registry_pid" 2>/dev/null || true
		wait "$registry_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

step "1. The manifests are valid"
say "$app: a network, a volume, an image and three containers, Kubernetes-style documents"
say "over four files. berth validate reports every mistake at once, with file:line:col."
show "$berth" validate "$app"

step "2. The image, made here and pushed to berth's own registry"
say "No internet: the image is Debian's static busybox with a symlink per applet,"
say "imported as $image and pushed to 'berth registry serve' on $registry_addr,"
say "which runs in the background with a temporary root."
mkdir -p "$work/rootfs/bin" "$work/rootfs/tmp" "$work/rootfs/www" "$work/rootfs/etc" "$work/rootfs/root"
cp /bin/busybox "$work/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
	[[ $applet == busybox ]] || ln -sf busybox "$work/rootfs/bin/$applet"
done
chmod 1777 "$work/rootfs/tmp"
echo 'root:x:0:0:root:/root:/bin/sh' >"$work/rootfs/etc/passwd"
echo 'root:x:0:' >"$work/rootfs/etc/group"
show "$berth" image import "$work/rootfs" "$image" --change 'CMD ["/bin/sh"]'
"$berth" registry serve --addr "$registry_addr" --root "$work/registry" --access-log "" 2>"$work/registry.log" &
registry_pid=$!
for _ in $(seq 100); do
	grep -q "listening on" "$work/registry.log" 2>/dev/null && break
	if ! kill -0 "$registry_pid" 2>/dev/null; then
		echo "demo: the registry did not start:" >&2
		cat "$work/registry.log" >&2
		exit 1
	fi
	sleep 0.05
done
show "$berth" push "$image"

step "3. What berth will do, then doing it"
say "plan shows each change with its symbol and fields (exit 2: there are changes)."
set +e
show "$berth" plan --detailed-exitcode "$app"
code=$?
set -e
[[ $code == 1 ]] && exit 1
say "apply runs independent changes in parallel and each container after what it"
say "dependsOn (seed completed -> web healthy -> client); --wait waits until all are"
say "healthy or completed."
show "$berth" apply --wait --timeout 2m "$app"

step "4. It answers, and a second plan is empty"
page=
for _ in $(seq 50); do
	if command -v curl >/dev/null 2>&1; then
		page=$(curl -fsS http://127.0.0.1:8080/ 2>/dev/null) && break
	else
		page=$(/bin/busybox wget -q -O - http://127.0.0.1:8080/ 2>/dev/null) && break
	fi
	sleep 0.1
done
printf '%s$ curl http://127.0.0.1:8080/%s\n' "$bold" "$reset"
if ! grep -q "Hello from berth" <<<"$page"; then
	echo "demo: http://127.0.0.1:8080/ did not answer with the page" >&2
	"$berth" status "$app" >&2 || true
	exit 1
fi
sed 's/<[^>]*>//g; /^[[:space:]]*$/d; s/^/    /' <<<"$page"
show "$berth" plan --detailed-exitcode "$app"
show "$berth" status "$app"

step "5. Stopping the registry (the app keeps running)"
kill "$registry_pid"
wait "$registry_pid" 2>/dev/null || true
registry_pid=

cat <<NEXT

${bold}The demo app runs on http://127.0.0.1:8080/ . Try next:${reset}
  berth ps                         the containers (demo-seed has completed)
  berth logs -f demo-client        the client fetching the page from web, by name
  berth status examples/demo       each resource: Ready, Reconciling or Stalled, and why
  berth watch examples/demo        keep converging: edit examples/demo/web.yaml in another
                                   terminal, or remove a container (berth rm -f demo-client)
                                   and see it come back
  berth destroy examples/demo      remove the app (--volumes also deletes the site volume)
  berth validate spec/testdata/demo-broken
                                   how berth reports broken manifests
NEXT
