package routing

// DefaultRemoteAddr is the default actor remoting bind address.
const DefaultRemoteAddr = ":8090"

// Config configures the transport between nodes: protoactor-go remoting.
type Config struct {
	// BindAddr is the actor remoting bind address (default ":8090").
	BindAddr string
	// Advertise is the address other members send actor messages to
	// (default: the gossip advertise host with BindAddr's port).
	Advertise string
	// TLS turns on mutual TLS for actor remoting (default: off).
	TLS RemoteTLS
	// ClusterKey, when set, is required of every peer: each call to this
	// node's remoting port must carry a fresh credential derived from it
	// (see remoteauth.go), and this node's calls carry one. Nodes set it
	// from the gossip key.
	ClusterKey []byte
	// OnRefused, when set, is called with the peer's address for each
	// remoting call refused for want of a valid cluster-key credential.
	OnRefused func(peer string)
}

// Secured reports whether remoting refuses peers that do not prove
// membership (mutual TLS or the cluster key).
func (c Config) Secured() bool { return c.TLS.Enabled() || len(c.ClusterKey) > 0 }

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{BindAddr: DefaultRemoteAddr, TLS: RemoteTLS{ServerName: DefaultRemoteTLSServerName}}
}

// withDefaults fills the zero fields of c from DefaultConfig.
func (c Config) withDefaults() Config {
	if c.BindAddr == "" {
		c.BindAddr = DefaultConfig().BindAddr
	}
	return c
}
