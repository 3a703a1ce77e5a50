package image

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"berth.dev/berth/engine"
)

// ApplyChanges applies Dockerfile-style instructions to an image config, as
// `docker import --change` does: CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL,
// EXPOSE, STOPSIGNAL and VOLUME, in the Dockerfile's syntax (exec form as a
// JSON array or shell form for CMD and ENTRYPOINT; KEY=value pairs with
// quotes, or the legacy "KEY value" form, for ENV and LABEL).
func ApplyChanges(cfg *v1.Config, changes []string) error {
	for _, c := range changes {
		if err := applyChange(cfg, c); err != nil {
			return fmt.Errorf("change %q: %w", c, err)
		}
	}
	return nil
}

func applyChange(cfg *v1.Config, change string) error {
	change = strings.TrimSpace(change)
	instr, rest, _ := strings.Cut(change, " ")
	if i := strings.IndexAny(change, " \t"); i >= 0 {
		instr, rest = change[:i], change[i+1:]
	}
	rest = strings.TrimSpace(rest)
	invalid := func(why string) error { return fmt.Errorf("%s: %w", why, engine.ErrInvalid) }
	switch strings.ToUpper(instr) {
	case "CMD":
		args, err := execOrShell(rest)
		if err != nil {
			return err
		}
		cfg.Cmd = args
	case "ENTRYPOINT":
		args, err := execOrShell(rest)
		if err != nil {
			return err
		}
		cfg.Entrypoint = args
	case "ENV":
		pairs, err := keyValues(rest)
		if err != nil {
			return err
		}
		for _, kv := range pairs {
			cfg.Env = setEnv(cfg.Env, kv[0], kv[1])
		}
	case "LABEL":
		pairs, err := keyValues(rest)
		if err != nil {
			return err
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range pairs {
			cfg.Labels[kv[0]] = kv[1]
		}
	case "WORKDIR":
		words, err := shellWords(rest)
		if err != nil || len(words) != 1 {
			return invalid("WORKDIR takes one path")
		}
		dir := words[0]
		if !path.IsAbs(dir) {
			dir = path.Join("/", cfg.WorkingDir, dir)
		}
		cfg.WorkingDir = path.Clean(dir)
	case "USER":
		if rest == "" || strings.ContainsAny(rest, " \t") {
			return invalid("USER takes one user[:group]")
		}
		cfg.User = rest
	case "EXPOSE":
		words, err := shellWords(rest)
		if err != nil || len(words) == 0 {
			return invalid("EXPOSE takes ports: port[/tcp|udp|sctp]")
		}
		for _, w := range words {
			ports, err := exposedPorts(w)
			if err != nil {
				return err
			}
			if cfg.ExposedPorts == nil {
				cfg.ExposedPorts = map[string]struct{}{}
			}
			for _, p := range ports {
				cfg.ExposedPorts[p] = struct{}{}
			}
		}
	case "STOPSIGNAL":
		if rest == "" || strings.ContainsAny(rest, " \t") {
			return invalid("STOPSIGNAL takes one signal")
		}
		cfg.StopSignal = rest
	case "VOLUME":
		var vols []string
		if strings.HasPrefix(rest, "[") {
			if err := json.Unmarshal([]byte(rest), &vols); err != nil {
				return invalid("VOLUME: " + err.Error())
			}
		} else {
			var err error
			if vols, err = shellWords(rest); err != nil {
				return err
			}
		}
		if len(vols) == 0 {
			return invalid("VOLUME takes paths")
		}
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range vols {
			if v == "" {
				return invalid("VOLUME: empty path")
			}
			cfg.Volumes[v] = struct{}{}
		}
	case "":
		return invalid("empty instruction")
	default:
		return fmt.Errorf("instruction %s: not one of CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, STOPSIGNAL, VOLUME: %w", instr, engine.ErrInvalid)
	}
	return nil
}

// execOrShell parses the exec form (a JSON array of strings) or wraps the
// shell form in /bin/sh -c.
func execOrShell(s string) ([]string, error) {
	if strings.HasPrefix(s, "[") {
		var args []string
		if err := json.Unmarshal([]byte(s), &args); err != nil {
			return nil, fmt.Errorf("exec form must be a JSON array of strings: %w: %w", err, engine.ErrInvalid)
		}
		return args, nil
	}
	if s == "" {
		return nil, fmt.Errorf("no command: %w", engine.ErrInvalid)
	}
	return []string{"/bin/sh", "-c", s}, nil
}

// keyValues parses "k=v k2='v 2'" or the legacy single pair "k v w".
func keyValues(s string) ([][2]string, error) {
	words, err := shellWords(s)
	if err != nil {
		return nil, err
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("no KEY=value: %w", engine.ErrInvalid)
	}
	if !strings.Contains(words[0], "=") {
		key, val, _ := strings.Cut(strings.TrimSpace(s), " ")
		val = strings.TrimSpace(val)
		if vw, err := shellWords(val); err == nil && len(vw) == 1 {
			val = vw[0]
		}
		if val == "" {
			return nil, fmt.Errorf("%s has no value: %w", key, engine.ErrInvalid)
		}
		return [][2]string{{key, val}}, nil
	}
	var out [][2]string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not KEY=value: %w", w, engine.ErrInvalid)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// shellWords splits s into words with the Dockerfile's quoting: single
// quotes literal, double quotes with backslash escapes, backslash escapes
// outside quotes.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\':
			inWord = true
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
		case c == '\'':
			inWord = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated single quote: %w", engine.ErrInvalid)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inWord = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated double quote: %w", engine.ErrInvalid)
			}
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func setEnv(env []string, key, val string) []string {
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			env[i] = key + "=" + val
			return env
		}
	}
	return append(env, key+"="+val)
}

// exposedPorts parses port[/proto] or a range low-high[/proto].
func exposedPorts(s string) ([]string, error) {
	spec, proto, _ := strings.Cut(s, "/")
	if proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return nil, fmt.Errorf("port %q: protocol must be tcp, udp or sctp: %w", s, engine.ErrInvalid)
	}
	lo, hi, isRange := strings.Cut(spec, "-")
	l, err := strconv.ParseUint(lo, 10, 16)
	if err != nil || l == 0 {
		return nil, fmt.Errorf("port %q: %w", s, engine.ErrInvalid)
	}
	h := l
	if isRange {
		if h, err = strconv.ParseUint(hi, 10, 16); err != nil || h < l || h-l > 1024 {
			return nil, fmt.Errorf("port range %q: %w", s, engine.ErrInvalid)
		}
	}
	var out []string
	for p := l; p <= h; p++ {
		out = append(out, strconv.FormatUint(p, 10)+"/"+proto)
	}
	return out, nil
}
