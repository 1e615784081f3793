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
	// TLS turns on mutual TLS for actor remoting (default: off, plain
	// gRPC: keep the port on a private network then).
	TLS RemoteTLS
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{BindAddr: DefaultRemoteAddr}
}

// withDefaults fills the zero fields of c from DefaultConfig.
func (c Config) withDefaults() Config {
	if c.BindAddr == "" {
		c.BindAddr = DefaultConfig().BindAddr
	}
	return c
}
