package engine

// ValidName reports whether name is a valid container, network or volume
// name, as Docker spells them: [a-zA-Z0-9][a-zA-Z0-9_.-]*. It is a loop, not
// a regexp, because every package-level regexp is compiled at each process
// start, and berth starts a process per command, monitor and init.
func ValidName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}

// ValidID reports whether id is a full container ID: 64 lowercase hex digits.
func ValidID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
