package render

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/engine"
	"berth.dev/berth/reconciler/plan"
	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

const (
	project = "shop"
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	idA     = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
)

func labels(kind plan.Kind, name, hash string) map[string]string {
	return map[string]string{
		engine.LabelProject: project, engine.LabelKind: string(kind),
		engine.LabelName: name, engine.LabelSpecHash: hash,
	}
}

func web(hash string, mutate ...func(*plan.Container)) plan.Container {
	c := plan.Container{
		Name: "web", Hash: plan.Hashes{Current: hash}, Image: "127.0.0.1:5000/web:1.4",
		Networks: []string{"back"},
		Config: engine.ContainerConfig{
			Name:     project + "-web",
			Image:    "127.0.0.1:5000/web@" + digestA,
			Cmd:      []string{"httpd", "-f", "-p", "80"},
			Env:      []string{"DB_PASSWORD=hunter2", "MODE=prod"},
			Labels:   labels(plan.KindContainer, "web", hash),
			Networks: []engine.EndpointConfig{{Network: project + "-back", Aliases: []string{"web"}}},
			Ports:    []engine.PortBinding{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}},
			Mounts:   []engine.Mount{{Type: engine.MountVolume, Source: project + "-content", Target: "/www", ReadOnly: true}},
			Restart:  engine.RestartPolicy{Name: "always"},
			Resources: engine.Resources{
				MemoryBytes: 64 << 20,
			},
			Healthcheck: &engine.Healthcheck{Test: []string{"wget", "-q", "-O-", "http://localhost/"}, Interval: 5e9, Retries: 3},
		},
	}
	for _, m := range mutate {
		m(&c)
	}
	return c
}

func observedOf(c plan.Container, status engine.Status) engine.Container {
	cfg := c.Config
	cfg.Labels = map[string]string{}
	for k, v := range c.Config.Labels {
		cfg.Labels[k] = v
	}
	return engine.Container{ID: strings.Repeat("c", 64), Name: cfg.Name, ImageID: idA, Config: cfg,
		State: engine.ContainerState{Status: status, Running: status == engine.StatusRunning}}
}

func network() plan.Network {
	return plan.Network{Name: "back", Hash: plan.Hashes{Current: "v1:n"}, Config: engine.NetworkConfig{
		Name: project + "-back", Driver: "bridge", DNS: true, Labels: labels(plan.KindNetwork, "back", "v1:n")}}
}

func volume() plan.Volume {
	return plan.Volume{Name: "content", Hash: plan.Hashes{Current: "v1:v"}, Config: engine.VolumeConfig{
		Name: project + "-content", Driver: "local", Labels: labels(plan.KindVolume, "content", "v1:v")}}
}

func image() plan.Image {
	return plan.Image{Name: "127.0.0.1:5000/web:1.4", Ref: "127.0.0.1:5000/web:1.4", PullPolicy: plan.PullIfNotPresent,
		Digest: digestA, Pin: "127.0.0.1:5000/web@" + digestA}
}

func observedWorld() plan.Observed {
	n := network()
	v := volume()
	return plan.Observed{
		Networks:   []engine.Network{{ID: strings.Repeat("n", 64), Name: n.Config.Name, Config: n.Config}},
		Volumes:    []engine.Volume{{Name: v.Config.Name, Config: v.Config}},
		Images:     []engine.Image{{ID: idA, Digest: digestA, RepoTags: []string{"127.0.0.1:5000/web:1.4"}}},
		Containers: []engine.Container{observedOf(web("v1:w"), engine.StatusRunning)},
	}
}

func desired(c plan.Container) plan.Desired {
	return plan.Desired{Project: project, Networks: []plan.Network{network()}, Volumes: []plan.Volume{volume()},
		Images: []plan.Image{image()}, Containers: []plan.Container{c}}
}

func plans() map[string]*plan.Plan {
	world := observedWorld()
	d := desired(web("v1:w"))
	updated := desired(web("v1:w2", func(c *plan.Container) {
		c.Config.Resources.MemoryBytes = 128 << 20
		c.Config.Restart = engine.RestartPolicy{Name: "on-failure", MaximumRetryCount: 3}
	}))
	replaced := desired(web("v1:w3", func(c *plan.Container) {
		c.Config.Env = []string{"DB_PASSWORD=swordfish", "MODE=dev"}
	}))
	drift := world
	drift.Containers = []engine.Container{observedOf(web("v1:w"), engine.StatusExited)}
	drift.Containers[0].State.ExitCode = 137
	return map[string]*plan.Plan{
		"create":  plan.Diff(&d, &plan.Observed{}, plan.Options{}),
		"update":  plan.Diff(&updated, &world, plan.Options{}),
		"replace": plan.Diff(&replaced, &world, plan.Options{}),
		"delete":  plan.Diff(&plan.Desired{Project: project}, &world, plan.Options{}),
		"drift":   plan.Diff(&d, &drift, plan.Options{}),
		"noop":    plan.Diff(&d, &world, plan.Options{}),
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

func TestGolden(t *testing.T) {
	schema := compileSchema(t)
	for name, p := range plans() {
		t.Run(name, func(t *testing.T) {
			var text, js bytes.Buffer
			if err := Human(&text, p, Options{}); err != nil {
				t.Fatal(err)
			}
			if err := JSON(&js, p); err != nil {
				t.Fatal(err)
			}
			golden(t, name+".txt", text.Bytes())
			golden(t, name+".json", js.Bytes())
			for _, out := range []string{text.String(), js.String()} {
				if strings.Contains(out, "hunter2") || strings.Contains(out, "swordfish") {
					t.Errorf("a secret leaked:\n%s", out)
				}
				if strings.Contains(out, "\x1b[") {
					t.Error("colour without Options.Color")
				}
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(js.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(doc); err != nil {
				t.Errorf("JSON plan does not match schemas/plan.schema.json: %v", err)
			}
		})
	}
}

func TestColor(t *testing.T) {
	var b bytes.Buffer
	if err := Human(&b, plans()["replace"], Options{Color: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), ansiRed+"-"+ansiReset+"/"+ansiGreen+"+"+ansiReset) {
		t.Errorf("no coloured -/+ in:\n%s", b.String())
	}
}

// A plan saved as JSON and read back (plan -out, then apply FILE) renders
// exactly as the original.
func TestRoundTrip(t *testing.T) {
	for name, p := range plans() {
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var back plan.Plan
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
		var a, b bytes.Buffer
		_ = Human(&a, p, Options{})
		_ = Human(&b, &back, Options{})
		if diff := cmp.Diff(a.String(), b.String()); diff != "" {
			t.Errorf("%s: rendering changed after a JSON round trip:\n%s", name, diff)
		}
	}
}

// A plan whose fields were not marked sensitive still hides secrets.
func TestRedactsUnmarkedSecrets(t *testing.T) {
	p := &plan.Plan{Project: project, Changes: []plan.Change{{
		Key: plan.Key{Kind: plan.KindContainer, Name: "x"}, Action: plan.Create, Reasons: []string{"not present"},
		Fields: []plan.Field{{Path: "env.API_TOKEN", New: "s3cr3t"}},
	}}}
	var text, js bytes.Buffer
	_ = Human(&text, p, Options{})
	_ = JSON(&js, p)
	if strings.Contains(text.String()+js.String(), "s3cr3t") {
		t.Errorf("secret leaked:\n%s\n%s", text.String(), js.String())
	}
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	path := filepath.Join("..", "..", "schemas", "plan.schema.json")
	c := jsonschema.NewCompiler()
	s, err := c.Compile(path)
	if err != nil {
		t.Fatalf("compile %s: %v", path, err)
	}
	return s
}
