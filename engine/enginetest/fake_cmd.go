package enginetest

import (
	"path"
	"strconv"
	"strings"
	"time"
)

// outcome is what the command model says a process does.
type outcome struct {
	forever bool          // runs until stopped
	after   time.Duration // then exits with code
	code    int
	stdout  []string // lines printed
}

// model evaluates argv with the fake's command model (see Fake). unknown
// says what a command the model does not know does: run forever (a
// container's main process, like a server) or succeed at once (an exec or a
// healthcheck probe).
func model(argv []string, unknownForever bool) outcome {
	if len(argv) == 0 {
		return outcome{code: 127}
	}
	switch path.Base(argv[0]) {
	case "sh", "ash", "bash":
		if len(argv) >= 3 && argv[1] == "-c" {
			return script(argv[2], unknownForever)
		}
		return outcome{forever: true} // an interactive shell waits for input
	case "sleep":
		if len(argv) < 2 {
			return outcome{code: 1}
		}
		secs, err := strconv.ParseFloat(strings.TrimSuffix(argv[1], "s"), 64)
		if err != nil || argv[1] == "infinity" || secs > 1e6 {
			return outcome{forever: true}
		}
		return outcome{after: time.Duration(secs * float64(time.Second))}
	case "true":
		return outcome{}
	case "false":
		return outcome{code: 1}
	case "echo":
		return outcome{stdout: []string{strings.Join(argv[1:], " ")}}
	case "exit":
		if len(argv) > 1 {
			n, _ := strconv.Atoi(argv[1])
			return outcome{code: n & 0xff}
		}
		return outcome{}
	}
	if unknownForever {
		return outcome{forever: true}
	}
	return outcome{}
}

// script runs a tiny subset of sh: simple commands joined by ";" or "&&".
func script(s string, unknownForever bool) outcome {
	var total outcome
	for _, stmt := range splitStatements(s) {
		words := strings.Fields(strings.NewReplacer(`"`, "", `'`, "").Replace(stmt.text))
		if len(words) == 0 {
			continue
		}
		if stmt.and && total.code != 0 {
			continue
		}
		o := model(words, unknownForever)
		total.stdout = append(total.stdout, o.stdout...)
		total.after += o.after
		total.code = o.code
		if o.forever {
			total.forever = true
			return total
		}
		if words[0] == "exit" {
			return total
		}
	}
	return total
}

type statement struct {
	text string
	and  bool // joined to the previous one with &&
}

func splitStatements(s string) []statement {
	var out []statement
	and := false
	for s != "" {
		i := strings.IndexAny(s, ";&")
		if i < 0 {
			out = append(out, statement{s, and})
			break
		}
		out = append(out, statement{s[:i], and})
		if strings.HasPrefix(s[i:], "&&") {
			and, s = true, s[i+2:]
		} else {
			and, s = false, s[i+1:]
		}
	}
	return out
}

// signalNumber parses a signal name (SIGTERM, TERM) or number.
func signalNumber(s string) (int, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		return n, n > 0 && n < 65
	}
	n, ok := signals[strings.TrimPrefix(strings.ToUpper(s), "SIG")]
	return n, ok
}

var signals = map[string]int{
	"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8, "KILL": 9, "USR1": 10,
	"SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19,
	"TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28,
	"IO": 29, "PWR": 30, "SYS": 31,
}
