package network

import (
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// recorder is a dns.ResponseWriter that keeps the reply.
type recorder struct {
	remote net.Addr
	reply  *dns.Msg
}

func (r *recorder) LocalAddr() net.Addr       { return &net.UDPAddr{IP: net.IPv4(10, 7, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr      { return r.remote }
func (r *recorder) WriteMsg(m *dns.Msg) error { r.reply = m; return nil }
func (r *recorder) Write([]byte) (int, error) { return 0, nil }
func (r *recorder) Close() error              { return nil }
func (r *recorder) TsigStatus() error         { return nil }
func (r *recorder) TsigTimersOnly(bool)       {}
func (r *recorder) Hijack()                   {}

// TestDNSAnswers drives the helper's handler: names per network and per
// client, record types, refusal of strangers, and SERVFAIL when no
// upstream answers.
func TestDNSAnswers(t *testing.T) {
	// An upstream that is not there: a UDP port nothing listens on answers
	// with ICMP port unreachable, so the forward fails at once.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	pc.Close()

	addr := netip.MustParseAddr
	recs := dnsRecords{
		Upstreams: []string{dead},
		Networks: []dnsNetwork{
			{ID: "front", Gateway: addr("10.7.0.1"), Subnet: netip.MustParsePrefix("10.7.0.0/24"), Endpoints: []dnsEndpoint{
				{Container: "a", IP: addr("10.7.0.2"), Names: []string{"a", "web"}},
				{Container: "b", IP: addr("10.7.0.3"), Names: []string{"b"}},
				{Container: "c", IP: addr("10.7.0.4"), Names: []string{"c"}},
			}},
			{ID: "back", Gateway: addr("10.8.0.1"), Subnet: netip.MustParsePrefix("10.8.0.0/24"), Endpoints: []dnsEndpoint{
				{Container: "c", IP: addr("10.8.0.4"), Names: []string{"c"}},
				{Container: "d", IP: addr("10.8.0.5"), Names: []string{"d", "db"}},
			}},
		},
	}
	s := &dnsHelper{view: newView(recs)}
	tests := []struct {
		name    string
		network string
		client  string
		q       string
		qtype   uint16
		rcode   int
		answers []string
	}{
		{name: "name", network: "front", client: "10.7.0.3", q: "a.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, answers: []string{"10.7.0.2"}},
		{name: "alias, any case", network: "front", client: "10.7.0.3", q: "WEB.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, answers: []string{"10.7.0.2"}},
		{name: "AAAA of a known name: no data", network: "front", client: "10.7.0.3", q: "a.", qtype: dns.TypeAAAA, rcode: dns.RcodeSuccess},
		{name: "reverse", network: "front", client: "10.7.0.3", q: "2.0.7.10.in-addr.arpa.", qtype: dns.TypePTR, rcode: dns.RcodeSuccess, answers: []string{"a."}},
		{name: "other network's name is not local", network: "front", client: "10.7.0.3", q: "d.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure},
		{name: "a container on both networks sees both", network: "front", client: "10.7.0.4", q: "db.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, answers: []string{"10.8.0.5"}},
		{name: "client from elsewhere", network: "front", client: "10.8.0.5", q: "a.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		{name: "unknown client of the network", network: "back", client: "10.8.0.99", q: "d.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, answers: []string{"10.8.0.5"}},
		{name: "no upstream answers", network: "front", client: "10.7.0.3", q: "example.org.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &recorder{remote: &net.UDPAddr{IP: net.ParseIP(tc.client), Port: 40000}}
			q := new(dns.Msg).SetQuestion(tc.q, tc.qtype)
			s.answer(w, q, tc.network)
			if w.reply == nil {
				t.Fatal("no reply")
			}
			if w.reply.Rcode != tc.rcode || w.reply.Id != q.Id {
				t.Fatalf("rcode %s, id %d; want %s, id %d", dns.RcodeToString[w.reply.Rcode], w.reply.Id, dns.RcodeToString[tc.rcode], q.Id)
			}
			var got []string
			for _, rr := range w.reply.Answer {
				switch rr := rr.(type) {
				case *dns.A:
					got = append(got, rr.A.String())
				case *dns.PTR:
					got = append(got, rr.Ptr)
				}
			}
			if len(got) != len(tc.answers) || (len(got) > 0 && got[0] != tc.answers[0]) {
				t.Errorf("answers %v, want %v", got, tc.answers)
			}
		})
	}
}
