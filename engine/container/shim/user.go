package shim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
)

// User is a resolved container user.
type User struct {
	UID, GID int
	Groups   []int // supplementary
	Home     string
}

type passwdEntry struct {
	name     string
	uid, gid int
	home     string
}

type groupEntry struct {
	name    string
	gid     int
	members []string
}

// ResolveUser resolves spec ("", "name", "uid", "name:group", "uid:gid", ...)
// with the image's /etc/passwd and /etc/group, read through open (an
// os.Root's Open: paths never leave the container's root).
func ResolveUser(spec string, open func(name string) (io.ReadCloser, error)) (User, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" {
		userPart = "0"
	}
	passwd, err := readPasswd(open)
	if err != nil {
		return User{}, err
	}
	u := User{Home: "/"}
	var entry *passwdEntry
	if uid, err := strconv.Atoi(userPart); err == nil {
		u.UID = uid
		for i := range passwd {
			if passwd[i].uid == uid {
				entry = &passwd[i]
				break
			}
		}
	} else {
		for i := range passwd {
			if passwd[i].name == userPart {
				entry = &passwd[i]
				break
			}
		}
		if entry == nil {
			return User{}, fmt.Errorf("unable to find user %s: no matching entries in passwd file", userPart)
		}
		u.UID = entry.uid
	}
	if entry != nil {
		u.GID = entry.gid
		if entry.home != "" {
			u.Home = entry.home
		}
	}
	var groups []groupEntry
	needGroups := (hasGroup && groupPart != "") || entry != nil
	if needGroups {
		if groups, err = readGroup(open); err != nil {
			return User{}, err
		}
	}
	if hasGroup && groupPart != "" {
		if gid, err := strconv.Atoi(groupPart); err == nil {
			u.GID = gid
		} else {
			found := false
			for _, g := range groups {
				if g.name == groupPart {
					u.GID, found = g.gid, true
					break
				}
			}
			if !found {
				return User{}, fmt.Errorf("unable to find group %s: no matching entries in group file", groupPart)
			}
		}
	}
	if entry != nil {
		for _, g := range groups {
			for _, m := range g.members {
				if m == entry.name && g.gid != u.GID {
					u.Groups = append(u.Groups, g.gid)
					break
				}
			}
		}
	}
	return u, nil
}

func readPasswd(open func(string) (io.ReadCloser, error)) ([]passwdEntry, error) {
	var out []passwdEntry
	err := readColonFile(open, "etc/passwd", func(f []string) {
		if len(f) < 4 {
			return
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return
		}
		e := passwdEntry{name: f[0], uid: uid, gid: gid}
		if len(f) > 5 {
			e.home = f[5]
		}
		out = append(out, e)
	})
	return out, err
}

func readGroup(open func(string) (io.ReadCloser, error)) ([]groupEntry, error) {
	var out []groupEntry
	err := readColonFile(open, "etc/group", func(f []string) {
		if len(f) < 3 {
			return
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			return
		}
		g := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			g.members = strings.Split(f[3], ",")
		}
		out = append(out, g)
	})
	return out, err
}

// readColonFile calls fn with the fields of each line; a missing file is
// empty.
func readColonFile(open func(string) (io.ReadCloser, error), name string, fn func([]string)) error {
	f, err := open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("read /%s: %w", name, err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fn(strings.Split(line, ":"))
	}
	return s.Err()
}
