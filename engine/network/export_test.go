package network

// What the tests with real containers (package network_test, which may
// import engine/local) share with the namespace-level tests.
var (
	NewOutside  = newOutside
	NewUpstream = newUpstream
	HostIPv4    = hostIPv4
	HTTPServer  = httpServer
	HTTPGet     = httpGet
	DialIn      = dialIn
	InNetns     = inNetns
	TableExists = tableExists
	HelperPids  = helperPids
	LinkGone    = linkGone
	FreePort    = freePort
	WaitTCP     = waitTCP
)

// DNSDir is where the manager keeps the DNS helper's files.
func (m *Manager) DNSDir() string { return m.dnsDir() }

// NetnsDir is where the manager keeps sandboxes.
func (m *Manager) NetnsDir() string { return m.netnsDir() }

// VethName is the host side of a container's veth on a network.
var VethName = vethName
