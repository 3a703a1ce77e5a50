package network

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"berth.dev/berth/engine/reexec"
	"berth.dev/berth/engine/state"
)

func init() { reexec.Register(dnsRole, dnsMain) }

// Answers for containers are short-lived: addresses change when containers
// are re-created.
const dnsTTL = 10

// Forwarded queries give up on one upstream after this long.
const upstreamTimeout = 2 * time.Second

// dnsMain is the berth-dns role: berth-dns DIR SOCKET, with fd 3 the
// readiness pipe.
func dnsMain() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "berth-dns: usage: berth-dns DIR SOCKET")
		os.Exit(2)
	}
	ready := os.NewFile(3, "ready")
	if err := serveDNS(os.Args[1], os.Args[2], ready); err != nil {
		fmt.Fprintf(os.Stderr, "%s berth-dns: %v\n", time.Now().Format(time.RFC3339), err)
		os.Exit(1)
	}
	os.Exit(0)
}

// dnsHelper is the running helper.
type dnsHelper struct {
	dir string

	mu        sync.RWMutex
	view      *dnsView
	listeners map[netip.Addr]*gwListener // by gateway
}

// dnsView is one loaded records file, indexed for queries.
type dnsView struct {
	upstreams []string
	nets      map[string]*netView     // by network ID
	member    map[netip.Addr][]string // client address -> IDs of its container's networks
}

type netView struct {
	subnet netip.Prefix
	names  map[string][]netip.Addr // FQDN, lower case -> addresses
	ptr    map[string]string       // reverse name -> FQDN
}

type gwListener struct {
	network string
	udp     net.PacketConn
	tcp     net.Listener
}

func serveDNS(dir, sock string, ready *os.File) error {
	ctl, err := listenControl(sock)
	if err != nil {
		fmt.Fprintf(ready, "control socket: %v\n", err)
		return fmt.Errorf("control socket %s: %w", sock, err)
	}
	defer ctl.Close()
	self, err := state.ProcessOf(os.Getpid())
	if err == nil {
		err = state.WriteJSON(filepath.Join(dir, "helper.json"), self)
	}
	if err != nil {
		fmt.Fprintf(ready, "record pid: %v\n", err)
		return err
	}
	s := &dnsHelper{dir: dir, listeners: map[netip.Addr]*gwListener{}}
	defer s.shutdown()
	serving, err := s.reload()
	if err != nil {
		fmt.Fprintf(ready, "%v\n", err)
		return err
	}
	if !serving {
		fmt.Fprintln(ready, "nothing to serve")
		return nil
	}
	fmt.Fprintln(ready, "ok")
	ready.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	cmds := make(chan net.Conn)
	go func() {
		for {
			c, err := ctl.Accept()
			if err != nil {
				close(cmds)
				return
			}
			cmds <- c
		}
	}()
	// The records file going away (its data root deleted) ends the helper
	// even if nobody tells it.
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			if serving, err = s.reload(); err == nil && !serving {
				return nil
			}
		case <-tick.C:
			if _, err := os.Stat(filepath.Join(dir, "records.json")); errors.Is(err, fs.ErrNotExist) {
				return nil
			}
		case c, ok := <-cmds:
			if !ok {
				return nil
			}
			if !s.control(c) {
				return nil
			}
		}
	}
}

// listenControl binds the control socket. The kernel may release the socket
// of a helper that was just killed a little after the helper is gone, so a
// taken name is retried for a moment before it means another helper runs.
func listenControl(sock string) (net.Listener, error) {
	deadline := time.Now().Add(2 * time.Second)
	for wait := time.Millisecond; ; wait *= 2 {
		l, err := net.Listen("unix", sock)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return l, err
		}
		time.Sleep(wait)
	}
}

// control answers one control connection and reports whether to go on.
func (s *dnsHelper) control(c net.Conn) bool {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return true // a liveness probe that just connects
	}
	switch strings.TrimSpace(line) {
	case "reload":
		serving, err := s.reload()
		switch {
		case err != nil:
			fmt.Fprintf(c, "error: %v\n", err)
		case !serving:
			s.shutdown() // free the ports before the manager goes on
			fmt.Fprintln(c, "exit")
			return false
		default:
			fmt.Fprintln(c, "ok")
		}
	default:
		fmt.Fprintln(c, "error: unknown command")
	}
	return true
}

// reload reads the records and listens on exactly the gateways they name.
// It reports whether there is anything to serve.
func (s *dnsHelper) reload() (bool, error) {
	var recs dnsRecords
	if err := state.ReadJSON(filepath.Join(s.dir, "records.json"), &recs); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return true, err
	}
	view := newView(recs)
	want := map[netip.Addr]string{}
	for _, n := range recs.Networks {
		want[n.Gateway] = n.ID
	}
	s.mu.Lock()
	s.view = view
	s.mu.Unlock()
	var errs []error
	for gw, l := range s.listeners {
		if want[gw] != l.network {
			l.close()
			delete(s.listeners, gw)
		}
	}
	for gw, id := range want {
		if s.listeners[gw] != nil {
			continue
		}
		l, err := s.listen(gw, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.listeners[gw] = l
	}
	return len(want) > 0, errors.Join(errs...)
}

func (s *dnsHelper) listen(gw netip.Addr, network string) (*gwListener, error) {
	addr := net.JoinHostPort(gw.String(), "53")
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s/udp: %w", addr, err)
	}
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("listen %s/tcp: %w", addr, err)
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) { s.answer(w, r, network) })
	go func() { _ = (&dns.Server{PacketConn: pc, Handler: handler}).ActivateAndServe() }()
	go func() { _ = (&dns.Server{Listener: ln, Handler: handler}).ActivateAndServe() }()
	return &gwListener{network: network, udp: pc, tcp: ln}, nil
}

func (l *gwListener) close() {
	l.udp.Close()
	l.tcp.Close()
}

func (s *dnsHelper) shutdown() {
	for gw, l := range s.listeners {
		l.close()
		delete(s.listeners, gw)
	}
	_ = os.Remove(filepath.Join(s.dir, "helper.json"))
}

func newView(recs dnsRecords) *dnsView {
	v := &dnsView{upstreams: recs.Upstreams, nets: map[string]*netView{}, member: map[netip.Addr][]string{}}
	byContainer := map[string][]string{}
	for _, n := range recs.Networks {
		nv := &netView{subnet: n.Subnet, names: map[string][]netip.Addr{}, ptr: map[string]string{}}
		for _, ep := range n.Endpoints {
			for _, name := range ep.Names {
				fq := dns.Fqdn(strings.ToLower(name))
				nv.names[fq] = append(nv.names[fq], ep.IP)
				if _, ok := nv.ptr[reverseName(ep.IP)]; !ok {
					nv.ptr[reverseName(ep.IP)] = fq
				}
			}
			byContainer[ep.Container] = append(byContainer[ep.Container], n.ID)
		}
		v.nets[n.ID] = nv
	}
	for _, n := range recs.Networks {
		for _, ep := range n.Endpoints {
			v.member[ep.IP] = byContainer[ep.Container]
		}
	}
	return v
}

func reverseName(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa.", b[3], b[2], b[1], b[0])
}

// answer serves one query that arrived on the gateway of network. Clients
// must be on that network; they see the names of every network their
// container shares with the answered ones, and nothing else: other names go
// to the host's resolvers.
func (s *dnsHelper) answer(w dns.ResponseWriter, r *dns.Msg, network string) {
	s.mu.RLock()
	view := s.view
	s.mu.RUnlock()
	client := addrOf(w.RemoteAddr())
	nv := view.nets[network]
	m := new(dns.Msg)
	if nv == nil || !nv.subnet.Contains(client) {
		_ = w.WriteMsg(m.SetRcode(r, dns.RcodeRefused))
		return
	}
	if len(r.Question) != 1 || r.Opcode != dns.OpcodeQuery {
		_ = w.WriteMsg(m.SetRcode(r, dns.RcodeFormatError))
		return
	}
	scope := view.member[client]
	if len(scope) == 0 {
		scope = []string{network}
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	var addrs []netip.Addr
	known, ptr := false, ""
	for _, id := range scope {
		n := view.nets[id]
		if n == nil {
			continue
		}
		if as, ok := n.names[name]; ok {
			known = true
			addrs = append(addrs, as...)
		}
		if p, ok := n.ptr[name]; ok && ptr == "" {
			ptr = p
		}
	}
	if q.Qclass == dns.ClassINET && (known || ptr != "") {
		m.SetReply(r)
		m.Authoritative = true
		m.RecursionAvailable = true
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: dnsTTL}
		switch {
		case q.Qtype == dns.TypeA && known:
			hdr.Rrtype = dns.TypeA
			for _, a := range addrs {
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
			}
		case q.Qtype == dns.TypePTR && ptr != "":
			hdr.Rrtype = dns.TypePTR
			m.Answer = append(m.Answer, &dns.PTR{Hdr: hdr, Ptr: ptr})
		}
		// Any other type of a known name: no data, but the name exists
		// (NXDOMAIN would make resolvers drop the A answer too).
		_ = w.WriteMsg(m)
		return
	}
	s.forward(w, r, view.upstreams)
}

// forward relays a query to the host's resolvers in order, over the
// transport the client used, and answers SERVFAIL when none replies.
func (s *dnsHelper) forward(w dns.ResponseWriter, r *dns.Msg, upstreams []string) {
	proto := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	c := &dns.Client{Net: proto, Timeout: upstreamTimeout}
	for _, up := range upstreams {
		resp, _, err := c.Exchange(r, up)
		if err != nil {
			continue
		}
		resp.Id = r.Id
		_ = w.WriteMsg(resp)
		return
	}
	_ = w.WriteMsg(new(dns.Msg).SetRcode(r, dns.RcodeServerFailure))
}

func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}
