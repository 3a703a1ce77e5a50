package spec

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Quantity is a size in bytes. Manifests write it as a Kubernetes quantity:
// a whole or decimal number with an optional suffix, binary (Ki, Mi, Gi, Ti,
// Pi, Ei: powers of 1024) or decimal (k, M, G, T, P, E: powers of 1000), or
// an exponent (1e9); a bare integer is bytes. 256Mi, 1.5Gi, 500M, 1048576.
type Quantity int64

// Bytes returns q as a number of bytes.
func (q Quantity) Bytes() int64 { return int64(q) }

// String returns the shortest exact form: a binary suffix when q is a
// multiple of one (256Mi), else plain bytes.
func (q Quantity) String() string {
	n := int64(q)
	if n == 0 {
		return "0"
	}
	for _, s := range []string{"Ei", "Pi", "Ti", "Gi", "Mi", "Ki"} {
		m := binarySuffixes[s]
		if n%m == 0 {
			return strconv.FormatInt(n/m, 10) + s
		}
	}
	return strconv.FormatInt(n, 10)
}

// MarshalText writes the String form.
func (q Quantity) MarshalText() ([]byte, error) { return []byte(q.String()), nil }

var binarySuffixes = map[string]int64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}
var decimalSuffixes = map[string]int64{"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}

const quantityHint = "want a number of bytes, optionally with a suffix such as Ki, Mi, Gi (powers of 1024) or k, M, G (powers of 1000), e.g. 256Mi"

// ParseQuantity parses a quantity of bytes (see Quantity).
func ParseQuantity(s string) (Quantity, error) {
	if s == "" {
		return 0, errors.New("empty quantity")
	}
	num, suffix := splitNumber(s)
	if strings.HasPrefix(num, "-") {
		return 0, fmt.Errorf("quantity %q must not be negative", s)
	}
	num = strings.TrimPrefix(num, "+")
	// Fast path for the common case, a whole number with a suffix (256Mi).
	if m := int64(1); num != "" && strings.Trim(num, "0123456789") == "" && len(num) <= 18 {
		if suffix != "" {
			m = binarySuffixes[suffix]
			if m == 0 {
				m = decimalSuffixes[suffix]
			}
		}
		if n, _ := strconv.ParseInt(num, 10, 64); m != 0 && n <= math.MaxInt64/m {
			return Quantity(n * m), nil
		} else if m != 0 {
			return 0, fmt.Errorf("quantity %q out of range", s)
		}
	}
	if !isDecimal(num) {
		return 0, fmt.Errorf("invalid quantity %q: %s", s, quantityHint)
	}
	v, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("invalid quantity %q: %s", s, quantityHint)
	}
	switch {
	case suffix == "":
	case binarySuffixes[suffix] != 0:
		v.Mul(v, new(big.Rat).SetInt64(binarySuffixes[suffix]))
	case decimalSuffixes[suffix] != 0:
		v.Mul(v, new(big.Rat).SetInt64(decimalSuffixes[suffix]))
	case suffix[0] == 'e' || suffix[0] == 'E':
		exp, err := strconv.Atoi(suffix[1:])
		if err != nil {
			return 0, fmt.Errorf("invalid quantity %q: %s", s, quantityHint)
		}
		if exp > 18 || exp < -18 {
			return 0, fmt.Errorf("quantity %q out of range", s)
		}
		p := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(exp))), nil))
		if exp < 0 {
			p.Inv(p)
		}
		v.Mul(v, p)
	default:
		if hint := unitHint(num, suffix); hint != "" {
			return 0, fmt.Errorf("invalid quantity %q: %s", s, hint)
		}
		return 0, fmt.Errorf("invalid quantity %q: %s", s, quantityHint)
	}
	if !v.IsInt() {
		return 0, fmt.Errorf("quantity %q is not a whole number of bytes", s)
	}
	n := v.Num()
	if !n.IsInt64() {
		return 0, fmt.Errorf("quantity %q out of range", s)
	}
	return Quantity(n.Int64()), nil
}

// unitHint suggests the binary suffix for Docker-style units (256m, 1g,
// 512MB), which a Kubernetes quantity reads differently (m is milli) or not
// at all.
func unitHint(num, suffix string) string {
	var bin string
	switch strings.ToLower(suffix) {
	case "k", "kb", "kib":
		bin = "Ki"
	case "m", "mb", "mib":
		bin = "Mi"
	case "g", "gb", "gib":
		bin = "Gi"
	case "t", "tb", "tib":
		bin = "Ti"
	default:
		return ""
	}
	return fmt.Sprintf("did you mean %s%s? (Ki, Mi, Gi, Ti are powers of 1024; k, M, G, T of 1000)", num, bin)
}

// splitNumber splits s into a leading number (sign, digits, one dot) and the
// rest.
func splitNumber(s string) (num, rest string) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	return s[:i], s[i:]
}

// isDecimal reports whether s is digits with at most one dot and at least
// one digit.
func isDecimal(s string) bool {
	digits, dots := 0, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] >= '0' && s[i] <= '9':
			digits++
		case s[i] == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// CPUs is a CPU limit in billionths of a CPU (Docker's NanoCPUs): "0.5" is
// 500000000. Manifests write a number of CPUs ("0.5", 2) or millicpus
// ("500m").
type CPUs int64

// NanoCPUs returns c in billionths of a CPU.
func (c CPUs) NanoCPUs() int64 { return int64(c) }

// String returns the number of CPUs in decimal ("0.5", "2").
func (c CPUs) String() string {
	s := strconv.FormatInt(int64(c)/1e9, 10)
	if frac := int64(c) % 1e9; frac != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%09d", frac), "0")
	}
	return s
}

// MarshalText writes the String form.
func (c CPUs) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// ParseCPUs parses a number of CPUs ("0.5", "2", "1e-1") or millicpus
// ("500m").
func ParseCPUs(s string) (CPUs, error) {
	bad := func() error {
		return fmt.Errorf("invalid cpus %q: want a number of CPUs (0.5, 2) or millicpus (500m)", s)
	}
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("cpus %q must not be negative", s)
	}
	if m, ok := strings.CutSuffix(s, "m"); ok {
		if m == "" || strings.Trim(m, "0123456789") != "" {
			return 0, bad()
		}
		n, err := strconv.ParseInt(m, 10, 64)
		if err != nil || n > math.MaxInt64/1_000_000 {
			return 0, fmt.Errorf("cpus %q out of range", s)
		}
		return CPUs(n * 1e6), nil
	}
	num := strings.TrimPrefix(s, "+")
	if isDecimal(num) {
		whole, frac, _ := strings.Cut(num, ".")
		if len(frac) > 9 {
			return 0, fmt.Errorf("cpus %q: at most 9 decimal places", s)
		}
		if whole == "" {
			whole = "0"
		}
		w, err := strconv.ParseInt(whole, 10, 64)
		if err != nil || w > math.MaxInt64/1_000_000_000-1 {
			return 0, fmt.Errorf("cpus %q out of range", s)
		}
		f := int64(0)
		if frac != "" {
			f, _ = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		}
		return CPUs(w*1e9 + f), nil
	}
	// Exponent forms, which YAML writes for some floats.
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || strings.ContainsAny(num, "xXpP_") {
		return 0, bad()
	}
	if f < 0 {
		return 0, fmt.Errorf("cpus %q must not be negative", s)
	}
	if f*1e9 >= math.MaxInt64/2 {
		return 0, fmt.Errorf("cpus %q out of range", s)
	}
	return CPUs(math.Round(f * 1e9)), nil
}

// Duration is a length of time, written as Go and Kubernetes do: a number
// with a unit (ns, us, ms, s, m, h), several concatenated: 30s, 1m30s, 500ms.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String returns the canonical form (1m30s).
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes the String form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// ParseDuration parses a non-negative duration (see Duration).
func ParseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want a number with a unit (ns, us, ms, s, m, h), e.g. 30s or 1m30s", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("duration %q must not be negative", s)
	}
	return Duration(v), nil
}
