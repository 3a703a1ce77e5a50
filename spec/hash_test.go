package spec

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// hashDir holds what the hash test manifests refer to: an env file and a
// directory to bind.
func hashDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "web.env"), []byte("A=1\nB=two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "other.env"), []byte("A=1\nB=three\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// others are the resources the container under test refers to.
const others = `apiVersion: berth.dev/v1alpha1
kind: Network
metadata: {name: net}
spec: {subnet: 10.89.0.0/24}
---
apiVersion: berth.dev/v1alpha1
kind: Volume
metadata: {name: data}
---
apiVersion: berth.dev/v1alpha1
kind: Container
metadata: {name: db}
spec: {image: busybox, healthcheck: {command: ["true"]}}
---
`

// hashOf loads doc (with others) and returns the hash of its first
// resource that is not one of others.
func hashOf(t *testing.T, dir, doc string) string {
	t.Helper()
	set, err := LoadReader("hash.yaml", strings.NewReader(others+doc), dir)
	if err != nil {
		t.Fatalf("load:\n%s\n%v", doc, err)
	}
	for _, r := range set.Resources() {
		switch r.Key() {
		case Key{KindNetwork, "net"}, Key{KindVolume, "data"}, Key{KindContainer, "db"}:
			continue
		}
		return Hash(r)
	}
	t.Fatalf("no resource in:\n%s", doc)
	return ""
}

func container(spec string) string {
	return "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: web}\nspec:\n" + spec
}

// TestHashInvariant: each pair means the same and must hash the same.
func TestHashInvariant(t *testing.T) {
	dir := hashDir(t)
	tests := []struct{ name, a, b string }{
		{"key order",
			container("  image: busybox\n  env: {A: x}\n  restart: always\n"),
			container("  restart: always\n  env: {A: x}\n  image: busybox\n")},
		{"top-level key order",
			"apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata: {name: v}\n",
			"metadata: {name: v}\nkind: Volume\napiVersion: berth.dev/v1alpha1\n"},
		{"formatting, quoting and comments",
			container("  image: busybox\n  command: [/bin/sh, -c, 'echo hi']\n  env: {A: x, B: y}\n"),
			container("  # the image\n  image: \"busybox\"   # pinned later\n  command:\n    - /bin/sh\n    - \"-c\"\n    - echo hi\n  env:\n    B: 'y'\n    A: x\n")},
		{"container defaults written out",
			container("  image: busybox\n"),
			container("  image: busybox\n  hostname: web\n  restart: \"no\"\n  stopGracePeriod: 10s\n  logging: {maxSize: 10Mi, maxFiles: 3}\n  readOnlyRootfs: false\n  resources: {}\n  ports: []\n  env: {}\n")},
		{"healthcheck defaults and forms",
			container("  image: busybox\n  healthcheck: {command: wget -q localhost}\n"),
			container("  image: busybox\n  healthcheck:\n    command: [/bin/sh, -c, wget -q localhost]\n    interval: 30s\n    timeout: 0.5m\n    retries: 3\n    startPeriod: 0s\n")},
		{"healthcheck CMD-SHELL",
			container("  image: busybox\n  healthcheck: {command: [CMD-SHELL, wget -q localhost]}\n"),
			container("  image: busybox\n  healthcheck: {command: wget -q localhost}\n")},
		{"healthcheck CMD",
			container("  image: busybox\n  healthcheck: {command: [CMD, wget, -q]}\n"),
			container("  image: busybox\n  healthcheck: {command: [wget, -q]}\n")},
		{"quantities",
			container("  image: busybox\n  resources: {memory: 256Mi}\n"),
			container("  image: busybox\n  resources: {memory: 268435456}\n")},
		{"quantities decimal",
			container("  image: busybox\n  resources: {memory: 0.25Gi}\n"),
			container("  image: busybox\n  resources: {memory: \"262144Ki\"}\n")},
		{"cpus",
			container("  image: busybox\n  resources: {cpus: \"0.5\"}\n"),
			container("  image: busybox\n  resources: {cpus: 500m}\n")},
		{"cpus number",
			container("  image: busybox\n  resources: {cpus: 0.5}\n"),
			container("  image: busybox\n  resources: {cpus: \"0.50\"}\n")},
		{"durations",
			container("  image: busybox\n  stopGracePeriod: 90s\n"),
			container("  image: busybox\n  stopGracePeriod: 1m30s\n")},
		{"signals",
			container("  image: busybox\n  stopSignal: TERM\n"),
			container("  image: busybox\n  stopSignal: 15\n")},
		{"capabilities: spelling, order, duplicates",
			container("  image: busybox\n  capAdd: [net_admin, SYS_TIME]\n"),
			container("  image: busybox\n  capAdd: [CAP_SYS_TIME, CAP_NET_ADMIN, NET_ADMIN]\n")},
		{"image reference",
			container("  image: busybox\n"),
			container("  image: docker.io/library/busybox:latest\n")},
		{"restart",
			container("  image: busybox\n  restart: on-failure\n"),
			container("  image: busybox\n  restart: on-failure:0\n")},
		{"ports: order, default protocol, all addresses, ranges",
			container("  image: busybox\n  networks: [net]\n  ports: [\"8080:80\", \"53:53/udp\", \"9000-9001:9000-9001\"]\n"),
			container("  image: busybox\n  networks: [net]\n  ports: [\"9001:9001\", \"53:53/udp\", \"0.0.0.0:8080:80/tcp\", \"9000:9000\"]\n")},
		{"networks: short and long form, alias order",
			container("  image: busybox\n  networks: [{name: net, aliases: [b, a]}]\n"),
			container("  image: busybox\n  networks:\n    - name: net\n      aliases: [a, b]\n")},
		{"networks: string and object",
			container("  image: busybox\n  networks: [net]\n"),
			container("  image: busybox\n  networks: [{name: net}]\n")},
		{"volumes: short and long form",
			container("  image: busybox\n  volumes: [\"data:/data:ro\", \"./site:/www\"]\n"),
			container("  image: busybox\n  volumes:\n    - {type: volume, source: data, target: /data/, readOnly: true}\n    - {type: bind, source: " + filepath.Join(dir, "site") + ", target: /www, readOnly: false}\n")},
		{"dependsOn: forms, default condition, order",
			container("  image: busybox\n  dependsOn: [db, {name: seed}]\n---\n" + seed),
			container("  image: busybox\n  dependsOn: [{name: seed, condition: started}, {name: db, condition: started}]\n---\n" + seed)},
		{"env file and env map",
			container("  image: busybox\n  envFile: web.env\n"),
			container("  image: busybox\n  env: {A: \"1\", B: two}\n")},
		{"env map wins over env file",
			container("  image: busybox\n  envFile: other.env\n  env: {B: two}\n"),
			container("  image: busybox\n  env: {A: \"1\", B: two}\n")},
		{"workingDir cleaned",
			container("  image: busybox\n  workingDir: /app/\n"),
			container("  image: busybox\n  workingDir: /app\n")},
		{"anchors and merges",
			container("  image: busybox\n  env: {A: x, B: y}\n"),
			container("  image: busybox\n  env: {<<: {A: x, B: z}, B: y}\n")},
		{"empty labels",
			"apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata: {name: v, labels: {}, annotations: {}}\n",
			"apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata: {name: v}\n"},
		{"network defaults",
			"apiVersion: berth.dev/v1alpha1\nkind: Network\nmetadata: {name: n2}\nspec: {subnet: 10.89.1.0/24}\n",
			"apiVersion: berth.dev/v1alpha1\nkind: Network\nmetadata: {name: n2}\nspec: {subnet: 10.89.1.0/24, gateway: 10.89.1.1, driver: bridge, dns: true, internal: false}\n"},
		{"volume defaults",
			"apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata: {name: v}\n",
			"apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata: {name: v}\nspec: {driver: local}\n"},
		{"image defaults",
			"apiVersion: berth.dev/v1alpha1\nkind: Image\nmetadata: {name: i}\nspec: {ref: busybox}\n",
			"apiVersion: berth.dev/v1alpha1\nkind: Image\nmetadata: {name: i}\nspec: {ref: \"index.docker.io/library/busybox:latest\", pullPolicy: ifNotPresent}\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if a, b := hashOf(t, dir, tc.a), hashOf(t, dir, tc.b); a != b {
				t.Errorf("hashes differ:\n%s\n%s\n--- a:\n%s--- b:\n%s", a, b, tc.a, tc.b)
			}
		})
	}
}

const seed = "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: seed}\nspec: {image: busybox}\n"

// TestHashChanges: each pair means different things and must hash
// differently.
func TestHashChanges(t *testing.T) {
	dir := hashDir(t)
	base := "  image: busybox\n  networks: [net]\n"
	tests := []struct{ name, b string }{
		{"image tag", container("  image: busybox:1.36\n  networks: [net]\n")},
		{"env value", container(base + "  env: {A: x}\n")},
		{"env file content", container(base + "  envFile: other.env\n")},
		{"command", container(base + "  command: [/bin/sh]\n")},
		{"args", container(base + "  args: [/bin/sh]\n")},
		{"port", container(base + "  ports: [\"8080:80\"]\n")},
		{"port protocol", container(base + "  ports: [\"8080:80/udp\"]\n")},
		{"port host address", container(base + "  ports: [\"127.0.0.1:8080:80\"]\n")},
		{"network order", container("  image: busybox\n  networks: [net, net2]\n---\napiVersion: berth.dev/v1alpha1\nkind: Network\nmetadata: {name: net2}\n")},
		{"static address", container("  image: busybox\n  networks: [{name: net, ipv4: 10.89.0.9}]\n")},
		{"volume", container(base + "  volumes: [data:/data]\n")},
		{"read-only volume", container(base + "  volumes: [data:/data:ro]\n")},
		{"restart", container(base + "  restart: always\n")},
		{"restart retries", container(base + "  restart: on-failure:2\n")},
		{"memory", container(base + "  resources: {memory: 64Mi}\n")},
		{"cpus", container(base + "  resources: {cpus: 2}\n")},
		{"pids", container(base + "  resources: {pids: 10}\n")},
		{"healthcheck", container(base + "  healthcheck: {command: [\"true\"]}\n")},
		{"dependsOn", container(base + "  dependsOn: [db]\n")},
		{"stop signal", container(base + "  stopSignal: KILL\n")},
		{"stop grace period", container(base + "  stopGracePeriod: 11s\n")},
		{"user", container(base + "  user: \"1000\"\n")},
		{"workingDir", container(base + "  workingDir: /srv\n")},
		{"hostname", container(base + "  hostname: other\n")},
		{"readOnlyRootfs", container(base + "  readOnlyRootfs: true\n")},
		{"capAdd", container(base + "  capAdd: [NET_ADMIN]\n")},
		{"capDrop", container(base + "  capDrop: [NET_ADMIN]\n")},
		{"logging", container(base + "  logging: {maxFiles: 4}\n")},
		{"label", "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: web, labels: {a: b}}\nspec:\n" + base},
		{"annotation", "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: web, annotations: {a: b}}\nspec:\n" + base},
		{"name", "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: web2}\nspec:\n" + base},
	}
	want := hashOf(t, dir, container(base))
	seen := map[string]string{want: "base"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := hashOf(t, dir, tc.b)
			if other, dup := seen[got]; dup {
				t.Errorf("hash equals that of %q:\n%s", other, tc.b)
			}
			seen[got] = tc.name
		})
	}

	// The same name and spec under another kind.
	if hashOf(t, dir, "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata: {name: x}\n") ==
		hashOf(t, dir, "apiVersion: berth.dev/v1alpha1\nkind: Network\nmetadata: {name: x}\nspec: {driver: bridge, dns: true}\n") {
		t.Error("a Volume and a Network hash the same")
	}
}

func TestHashVersions(t *testing.T) {
	set, err := Load("testdata/valid/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := set.Get(Key{KindContainer, "web"})
	h := Hash(r)
	if !regexp.MustCompile(`^v1:[0-9a-f]{64}$`).MatchString(h) || !strings.HasPrefix(h, HashVersion+":") {
		t.Errorf("Hash = %q", h)
	}
	if h1, err := HashWith("v1", r); err != nil || h1 != h {
		t.Errorf("HashWith(v1) = %q, %v", h1, err)
	}
	if _, err := HashWith("v0", r); !errors.Is(err, ErrUnknownHashVersion) {
		t.Errorf("HashWith(v0) error = %v", err)
	}
	if !HashMatches(h, r) {
		t.Error("HashMatches(own hash) = false")
	}
	for _, bad := range []string{"", "v1", "v1:00", "v0:" + h[3:], "v9:" + h[3:]} {
		if HashMatches(bad, r) {
			t.Errorf("HashMatches(%q) = true", bad)
		}
	}
	// The hash is stable across runs and machines: the canonical form of
	// v1 is frozen. If this changes, v1's output changed: restore it and
	// add a version instead.
	set2, err := LoadReader("x.yaml", strings.NewReader("apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: web, labels: {tier: front}}\nspec:\n  image: busybox:1.35\n  env: {MODE: prod}\n  ports: [\"8080:80\"]\n  networks: [net]\n---\napiVersion: berth.dev/v1alpha1\nkind: Network\nmetadata: {name: net}\n"), "/")
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := set2.Get(Key{KindContainer, "web"})
	e := canonicalV1{}
	e.resource(r2)
	const wantCanonical = `{"kind":"Container","metadata":{"labels":{"tier":"front"},"name":"web"},"spec":{"env":{"MODE":"prod"},"hostname":"web","image":"index.docker.io/library/busybox:1.35","logging":{"maxFiles":3,"maxSize":10485760},"networks":[{"name":"net"}],"ports":[{"ContainerPort":80,"HostPort":8080,"Protocol":"tcp"}],"restart":{"Name":"no"},"stopGracePeriod":10000000000}}`
	if got := string(e.b); got != wantCanonical {
		t.Errorf("v1 canonical form changed:\n got %s\nwant %s", got, wantCanonical)
	}
}

func TestCanonicalString(t *testing.T) {
	e := canonicalV1{}
	e.string("a\"b\\c\n\x00\x7fü")
	if want := `"a\"b\\c\u000a\u0000\u007fü"`; string(e.b) != want {
		t.Errorf("got %s, want %s", e.b, want)
	}
}

func TestHealthCommandMarkersRoundTrip(t *testing.T) {
	doc := container("  image: busybox\n  healthcheck: {command: [CMD, CMD-SHELL, x]}\n")
	set, err := LoadReader("x.yaml", strings.NewReader(others+doc), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, _ := set.Get(Key{KindContainer, "web"})
	if got := r.Container().Healthcheck.Command; len(got) != 2 || got[0] != "CMD-SHELL" {
		t.Fatalf("command = %q", got)
	}
	b, err := r.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	back, err := LoadReader("x.yaml", strings.NewReader(others+string(b)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := back.Get(Key{KindContainer, "web"})
	if Hash(r2) != Hash(r) {
		t.Errorf("round trip changed the command to %q", r2.Container().Healthcheck.Command)
	}
}
