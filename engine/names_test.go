package engine

import "testing"

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"web": true, "Web_1.a-b": true, "0": true,
		"": false, "-web": false, ".web": false, "_web": false, "we b": false, "wéb": false, "a/b": false,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestValidID(t *testing.T) {
	good := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for id, want := range map[string]bool{
		good: true, good[:63]: false, good + "0": false,
		"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef": false,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}
