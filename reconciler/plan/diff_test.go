package plan

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"berth.dev/berth/engine"
	"github.com/google/go-cmp/cmp"
)

const project = "shop"

func labels(kind Kind, name, hash string) map[string]string {
	return map[string]string{
		engine.LabelProject:  project,
		engine.LabelKind:     string(kind),
		engine.LabelName:     name,
		engine.LabelSpecHash: hash,
	}
}

func dNet(name, hash string) Network {
	return Network{Name: name, Hash: Hashes{Current: hash}, Config: engine.NetworkConfig{
		Name: project + "-" + name, Driver: "bridge", DNS: true, Labels: labels(KindNetwork, name, hash),
	}}
}

func oNet(n Network) engine.Network {
	cfg := n.Config
	cfg.Subnet, cfg.Gateway = "10.88.1.0/24", "10.88.1.1" // allocated by the engine
	return engine.Network{ID: "net-" + n.Name, Name: cfg.Name, Config: cfg, Bridge: "berth0123456789"}
}

func dVol(name, hash string) Volume {
	return Volume{Name: name, Hash: Hashes{Current: hash}, Config: engine.VolumeConfig{
		Name: project + "-" + name, Driver: "local", Labels: labels(KindVolume, name, hash),
	}}
}

func oVol(v Volume) engine.Volume {
	return engine.Volume{Name: v.Config.Name, Config: v.Config, Mountpoint: "/var/lib/berth/volumes/" + v.Config.Name}
}

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	idA     = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	idB     = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func dImg(ref, digest string) Image {
	repo := strings.Split(ref, ":")[0]
	return Image{Name: ref, Ref: ref, PullPolicy: PullIfNotPresent, Digest: digest, Pin: repo + "@" + digest}
}

func oImg(ref, digest, id string) engine.Image {
	repo := strings.Split(ref, ":")[0]
	return engine.Image{ID: id, Digest: digest, RepoTags: []string{ref}, RepoDigests: []string{repo + "@" + digest}}
}

type ctrOpt func(*Container)

func dCtr(name, hash string, opts ...ctrOpt) Container {
	c := Container{
		Name: name, Hash: Hashes{Current: hash}, Image: "reg/web:1",
		Config: engine.ContainerConfig{
			Name: project + "-" + name, Image: "reg/web@" + digestA,
			Cmd: []string{"httpd", "-f"}, Env: []string{"MODE=prod"},
			Labels:  labels(KindContainer, name, hash),
			Restart: engine.RestartPolicy{Name: "always"},
		},
	}
	for _, o := range opts {
		o(&c)
	}
	return c
}

func onNet(n string) ctrOpt {
	return func(c *Container) {
		c.Networks = append(c.Networks, n)
		c.Config.Networks = append(c.Config.Networks, engine.EndpointConfig{Network: project + "-" + n, Aliases: []string{c.Name}})
	}
}

func dependsOn(name, cond string) ctrOpt {
	return func(c *Container) {
		c.DependsOn = append(c.DependsOn, Dependency{Name: name, Condition: cond})
		c.Config.Labels[LabelDependsOn] = strings.TrimPrefix(c.Config.Labels[LabelDependsOn]+","+name, ",")
	}
}

func withEnv(kv ...string) ctrOpt { return func(c *Container) { c.Config.Env = kv } }

func oCtr(c Container, status engine.Status, mutate ...func(*engine.Container)) engine.Container {
	cfg := c.Config
	cfg.Labels = map[string]string{}
	for k, v := range c.Config.Labels {
		cfg.Labels[k] = v
	}
	oc := engine.Container{
		ID: "id-" + c.Name, Name: cfg.Name, ImageID: idA, Config: cfg,
		State: engine.ContainerState{Status: status, Running: status == engine.StatusRunning},
	}
	for _, m := range mutate {
		m(&oc)
	}
	return oc
}

// summary renders a plan compactly for table comparisons.
func summary(p *Plan) []string {
	var out []string
	for _, c := range p.Changes {
		s := fmt.Sprintf("%s %s", c.Action.Symbol(), c.Key)
		if c.Drift != "" {
			s += " drift=" + string(c.Drift)
		}
		if c.Start {
			s += " start"
		}
		out = append(out, s)
	}
	return out
}

func TestDiff(t *testing.T) {
	web := dCtr("web", "v1:web", onNet("back"), dependsOn("db", ConditionHealthy))
	db := dCtr("db", "v1:db", onNet("back"))
	back := dNet("back", "v1:back")
	data := dVol("data", "v1:data")
	img := dImg("reg/web:1", digestA)
	desired := Desired{Project: project, Networks: []Network{back}, Volumes: []Volume{data}, Images: []Image{img}, Containers: []Container{web, db}}
	upToDate := Observed{
		Networks:   []engine.Network{oNet(back)},
		Volumes:    []engine.Volume{oVol(data)},
		Images:     []engine.Image{oImg("reg/web:1", digestA, idA)},
		Containers: []engine.Container{oCtr(web, engine.StatusRunning), oCtr(db, engine.StatusRunning)},
	}
	with := func(f func(o *Observed)) Observed {
		o := upToDate
		o.Containers = append([]engine.Container(nil), upToDate.Containers...)
		o.Networks = append([]engine.Network(nil), upToDate.Networks...)
		o.Volumes = append([]engine.Volume(nil), upToDate.Volumes...)
		o.Images = append([]engine.Image(nil), upToDate.Images...)
		f(&o)
		return o
	}
	desiredWith := func(f func(d *Desired)) Desired {
		d := desired
		d.Containers = []Container{dCtr("web", "v1:web", onNet("back"), dependsOn("db", ConditionHealthy)), dCtr("db", "v1:db", onNet("back"))}
		d.Networks = []Network{dNet("back", "v1:back")}
		d.Images = []Image{img}
		d.Volumes = []Volume{data}
		f(&d)
		return d
	}
	noop := []string{"  network/back", "  volume/data", "  image/reg/web:1", "  container/db", "  container/web"}

	tests := []struct {
		name     string
		desired  Desired
		observed Observed
		opts     Options
		want     []string
		reasons  map[string][]string // key -> reasons, for the changes that matter
		warnings int
	}{
		{
			name:    "nothing observed: everything created in order",
			desired: desired,
			want:    []string{"+ network/back", "+ volume/data", "+ image/reg/web:1", "+ container/db", "+ container/web"},
			reasons: map[string][]string{"container/web": {"not present"}},
		},
		{
			name: "up to date", desired: desired, observed: upToDate, want: noop,
		},
		{
			name:    "older hash version still matches",
			desired: desiredWith(func(d *Desired) { d.Containers[0].Hash = Hashes{Current: "v2:web", Prior: []string{"v1:web"}} }),
			// The observed label says v1:web; the config itself is unchanged
			// apart from the hash label, which the fast path ignores.
			observed: upToDate,
			want:     noop,
		},
		{
			name: "env changed forces replacement",
			desired: desiredWith(func(d *Desired) {
				d.Containers[0] = dCtr("web", "v1:web2", onNet("back"), dependsOn("db", ConditionHealthy), withEnv("MODE=dev"))
			}),
			observed: upToDate,
			want:     []string{"  network/back", "  volume/data", "  image/reg/web:1", "  container/db", "-/+ container/web"},
			reasons:  map[string][]string{"container/web": {"spec changed: env.MODE forces replacement"}},
		},
		{
			name: "memory changed is updated in place",
			desired: desiredWith(func(d *Desired) {
				d.Containers[1] = dCtr("db", "v1:db2", onNet("back"), func(c *Container) { c.Config.Resources.MemoryBytes = 256 << 20 })
			}),
			observed: upToDate,
			want:     []string{"  network/back", "  volume/data", "  image/reg/web:1", "~ container/db", "  container/web"},
			reasons:  map[string][]string{"container/db": {"spec changed: resources.memory (in place)"}},
		},
		{
			name: "restart policy changed outside berth",
			observed: with(func(o *Observed) {
				o.Containers[1].Config.Restart = engine.RestartPolicy{Name: "no"}
			}),
			desired: desired,
			want:    []string{"  network/back", "  volume/data", "  image/reg/web:1", "~ container/db drift=changed", "  container/web"},
			reasons: map[string][]string{"container/db": {"changed outside berth: restart"}},
		},
		{
			name: "tag moved to a new digest",
			desired: desiredWith(func(d *Desired) {
				d.Images[0] = dImg("reg/web:1", digestB)
				for i := range d.Containers {
					d.Containers[i].Config.Image = "reg/web@" + digestB
				}
			}),
			observed: upToDate,
			want:     []string{"  network/back", "  volume/data", "~ image/reg/web:1", "-/+ container/db", "-/+ container/web"},
			reasons: map[string][]string{
				"image/reg/web:1": {"reg/web:1 now names sha256:bbbbbbbbbbbb: it will be pulled"},
				"container/web":   {"image reg/web:1 now resolves to sha256:bbbbbbbbbbbb"},
			},
		},
		{
			name:     "container removed outside berth",
			desired:  desired,
			observed: with(func(o *Observed) { o.Containers = o.Containers[1:]; o.Applied = []Key{{KindContainer, "web"}} }),
			want:     []string{"  network/back", "  volume/data", "  image/reg/web:1", "  container/db", "+ container/web drift=removed"},
			reasons:  map[string][]string{"container/web": {"removed outside berth"}},
		},
		{
			name:    "stopped although restart always",
			desired: desired,
			observed: with(func(o *Observed) {
				o.Containers[1].State = engine.ContainerState{Status: engine.StatusExited, ExitCode: 137}
			}),
			want:    []string{"  network/back", "  volume/data", "  image/reg/web:1", "~ container/db drift=stopped start", "  container/web"},
			reasons: map[string][]string{"container/db": {`exited (code 137) but its restart policy "always" keeps it running`}},
		},
		{
			name: "completed with restart no is left alone",
			desired: desiredWith(func(d *Desired) {
				d.Containers[1].Config.Restart = engine.RestartPolicy{Name: "no"}
			}),
			observed: with(func(o *Observed) {
				o.Containers[1].Config.Restart = engine.RestartPolicy{Name: "no"}
				o.Containers[1].State = engine.ContainerState{Status: engine.StatusExited}
			}),
			want: noop,
		},
		{
			name:     "created but never started",
			desired:  desired,
			observed: with(func(o *Observed) { o.Containers[0].State = engine.ContainerState{Status: engine.StatusCreated} }),
			want:     []string{"  network/back", "  volume/data", "  image/reg/web:1", "  container/db", "~ container/web drift=stopped start"},
		},
		{
			name:     "dead container is replaced",
			desired:  desired,
			observed: with(func(o *Observed) { o.Containers[1].State = engine.ContainerState{Status: engine.StatusDead} }),
			want:     []string{"  network/back", "  volume/data", "  image/reg/web:1", "-/+ container/db", "  container/web"},
		},
		{
			name: "dependsOn-only change refreshes the hash label in place",
			desired: desiredWith(func(d *Desired) {
				d.Containers[0] = dCtr("web", "v1:web3", onNet("back"))
				d.Containers[0].Config.Labels[LabelDependsOn] = "db" // same config, the label is berth's
			}),
			observed: upToDate,
			want:     []string{"  network/back", "  volume/data", "  image/reg/web:1", "  container/db", "~ container/web"},
		},
		{
			name: "network changed: it and its containers are replaced",
			desired: desiredWith(func(d *Desired) {
				d.Networks[0] = dNet("back", "v1:back2")
				d.Networks[0].Config.Internal = true
			}),
			observed: upToDate,
			want:     []string{"-/+ network/back", "  volume/data", "  image/reg/web:1", "-/+ container/db", "-/+ container/web"},
			reasons:  map[string][]string{"container/db": {"network/back is replaced"}, "network/back": {"spec changed: internal (networks cannot change in place)"}},
		},
		{
			name:     "removed from the manifests: deleted in reverse dependency order, volume kept",
			desired:  Desired{Project: project, Images: []Image{img}},
			observed: upToDate,
			want:     []string{"  image/reg/web:1", "- container/web", "- container/db", "- network/back"},
			warnings: 1,
		},
		{
			name:     "destroy with --prune-volumes",
			desired:  Desired{Project: project},
			observed: upToDate,
			opts:     Options{PruneVolumes: true},
			want:     []string{"- container/web", "- container/db", "- volume/data", "- network/back"},
		},
		{
			name:     "other projects' objects are not ours",
			desired:  Desired{Project: "other"},
			observed: upToDate,
			want:     nil,
		},
		{
			name:    "image tagged locally with another digest is pulled",
			desired: desired,
			observed: with(func(o *Observed) {
				o.Images = []engine.Image{oImg("reg/web:1", digestB, idB)}
			}),
			want: noopExcept(noop, "  image/reg/web:1", "~ image/reg/web:1"),
		},
		{
			name:     "volume whose manifest changed is kept without --prune-volumes",
			desired:  desiredWith(func(d *Desired) { d.Volumes[0] = dVol("data", "v1:data2"); d.Volumes[0].Config.Labels["tier"] = "db" }),
			observed: upToDate,
			want:     noop,
			warnings: 1,
		},
		{
			name:    "duplicate container of one key is deleted",
			desired: desired,
			observed: with(func(o *Observed) {
				dup := o.Containers[1]
				dup.ID, dup.Name = "id-dup", "shop-db-old"
				o.Containers = append(o.Containers, dup)
			}),
			want: []string{"  network/back", "  volume/data", "  image/reg/web:1", "  container/db", "  container/web", "- container/db"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Diff(&tc.desired, &tc.observed, tc.opts)
			if diff := cmp.Diff(tc.want, summary(p)); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
			for k, want := range tc.reasons {
				var got []string
				for _, c := range p.Changes {
					if c.Key.String() == k && c.Action != Delete {
						got = c.Reasons
					}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("reasons of %s (-want +got):\n%s", k, diff)
				}
			}
			if len(p.Warnings) != tc.warnings {
				t.Errorf("warnings = %q, want %d", p.Warnings, tc.warnings)
			}
			for _, c := range p.Changes {
				if c.Action != NoOp && len(c.Reasons) == 0 {
					t.Errorf("%s %s has no reason", c.Action, c.Key)
				}
			}
			// Deterministic: shuffled observations give the same plan.
			o2 := tc.observed
			o2.Containers = append([]engine.Container(nil), o2.Containers...)
			rand.Shuffle(len(o2.Containers), func(i, j int) { o2.Containers[i], o2.Containers[j] = o2.Containers[j], o2.Containers[i] })
			if diff := cmp.Diff(p, Diff(&tc.desired, &o2, tc.opts)); diff != "" {
				t.Errorf("plan depends on observation order:\n%s", diff)
			}
		})
	}
}

func noopExcept(base []string, old, new string) []string {
	out := append([]string(nil), base...)
	for i, s := range out {
		if s == old {
			out[i] = new
		}
	}
	return out
}

func TestDiffFields(t *testing.T) {
	web := dCtr("web", "v1:a", withEnv("MODE=prod", "DB_PASSWORD=hunter2"))
	changed := dCtr("web", "v1:b", withEnv("MODE=dev", "DB_PASSWORD=swordfish"), func(c *Container) {
		c.Config.Resources.MemoryBytes = 128 << 20
	})
	p := Diff(&Desired{Project: project, Containers: []Container{changed}},
		&Observed{Containers: []engine.Container{oCtr(web, engine.StatusRunning)}}, Options{})
	ch, _ := p.Get(Key{KindContainer, "web"})
	want := []Field{
		{Path: "env.DB_PASSWORD", Old: Redacted, New: Redacted, ForcesReplace: true, Sensitive: true},
		{Path: "env.MODE", Old: "prod", New: "dev", ForcesReplace: true},
		{Path: "resources.memory", Old: nil, New: "128Mi"},
	}
	if diff := cmp.Diff(want, ch.Fields); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	if ch.Action != Replace {
		t.Errorf("action = %v, want replace", ch.Action)
	}
	if got, want := ch.Reasons, []string{"spec changed: env.DB_PASSWORD and env.MODE force replacement"}; !cmp.Equal(got, want) {
		t.Errorf("reasons = %q, want %q", got, want)
	}

	// A create lists every attribute, secrets redacted.
	p = Diff(&Desired{Project: project, Containers: []Container{web}}, nil, Options{})
	for _, f := range p.Changes[0].Fields {
		if f.Old != nil {
			t.Errorf("create field %s has old value %v", f.Path, f.Old)
		}
		if strings.Contains(fmt.Sprint(f.New), "hunter2") {
			t.Errorf("secret leaked in field %s", f.Path)
		}
	}
}

func TestSensitive(t *testing.T) {
	for name, want := range map[string]bool{
		"DB_PASSWORD": true, "api_key": true, "GITHUB_TOKEN": true, "AWS_SECRET_ACCESS_KEY": true, "client_secret": true,
		"MODE": false, "PORT": false, "HOME": false,
	} {
		if got := Sensitive(name); got != want {
			t.Errorf("Sensitive(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestSummary(t *testing.T) {
	p := &Plan{Changes: []Change{{Action: Create}, {Action: Create}, {Action: Update}, {Action: Replace}, {Action: NoOp}}}
	if diff := cmp.Diff(Summary{Add: 2, Change: 1, Replace: 1}, p.Summary()); diff != "" {
		t.Error(diff)
	}
	if !p.HasChanges() || (&Plan{Changes: []Change{{Action: NoOp}}}).HasChanges() {
		t.Error("HasChanges wrong")
	}
}

func TestFingerprints(t *testing.T) {
	web := dCtr("web", "v1:a")
	d := &Desired{Project: project, Containers: []Container{web}, Images: []Image{dImg("reg/web:1", digestA)}}
	o := &Observed{Containers: []engine.Container{oCtr(web, engine.StatusRunning)}, Images: []engine.Image{oImg("reg/web:1", digestA, idA)}}
	base := FingerprintObserved(d, o)

	// Health and timestamps do not matter; an unrelated image does not either.
	o2 := *o
	o2.Containers = []engine.Container{oCtr(web, engine.StatusRunning, func(c *engine.Container) {
		c.State.Health = &engine.Health{Status: "healthy"}
		c.State.Pid = 42
	})}
	o2.Images = append(o2.Images, engine.Image{ID: idB, RepoTags: []string{"unrelated:1"}})
	if got := FingerprintObserved(d, &o2); got != base {
		t.Error("fingerprint changed with health, pid or an unrelated image")
	}
	// A stopped container does.
	o3 := *o
	o3.Containers = []engine.Container{oCtr(web, engine.StatusExited)}
	if FingerprintObserved(d, &o3) == base {
		t.Error("fingerprint unchanged although the container stopped")
	}
	if FingerprintDesired(d) != FingerprintDesired(d) || !strings.HasPrefix(FingerprintDesired(d), "sha256:") {
		t.Error("desired fingerprint not stable")
	}
}

func TestActionText(t *testing.T) {
	for _, a := range []Action{NoOp, Create, Update, Replace, Delete} {
		b, _ := a.MarshalText()
		var back Action
		if err := back.UnmarshalText(b); err != nil || back != a {
			t.Errorf("round trip of %v: %v %v", a, back, err)
		}
	}
	if Replace.Symbol() != "-/+" || Create.Symbol() != "+" {
		t.Error("symbols")
	}
}
