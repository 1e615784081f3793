package routing

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// DefaultRemoteTLSServerName is the name every node's remoting certificate
// must carry (as a DNS SAN) when remoting TLS is on: nodes dial each other
// by IP, so they check this fixed name rather than the address.
const DefaultRemoteTLSServerName = "presence-remote"

// RemoteTLS configures mutual TLS on the actor-remoting port: each node
// presents CertFile/KeyFile and accepts only peers whose certificate is
// signed by the CA in CAFile.
type RemoteTLS struct {
	CertFile, KeyFile, CAFile string
	// ServerName is checked in peers' certificates (default
	// DefaultRemoteTLSServerName).
	ServerName string
}

// Enabled reports whether any TLS file is configured.
func (t RemoteTLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" || t.CAFile != "" }

// options returns the gRPC server and dial options for mutual TLS.
func (t RemoteTLS) options() (grpc.ServerOption, grpc.DialOption, error) {
	if t.CertFile == "" || t.KeyFile == "" || t.CAFile == "" {
		return nil, nil, errors.New("remoting TLS needs the certificate, key and CA files together")
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("remoting TLS key pair: %w", err)
	}
	caPEM, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, nil, fmt.Errorf("remoting TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("remoting TLS CA %s: no PEM certificate found", t.CAFile)
	}
	name := t.ServerName
	if name == "" {
		name = DefaultRemoteTLSServerName
	}
	server := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	client := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   name,
	}
	return grpc.Creds(credentials.NewTLS(server)), grpc.WithTransportCredentials(credentials.NewTLS(client)), nil
}
