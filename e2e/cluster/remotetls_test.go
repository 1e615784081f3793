//go:build !race

package clustere2e

// Mutual TLS on the actor-remoting port: nodes with certificates from the
// cluster's CA talk to each other; a node whose certificate another CA
// signed joins the gossip (same key) but no actor message crosses between
// it and the others.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/presence-cluster/presence/routing"

	"github.com/presence-cluster/presence/internal/testkit"
)

type tlsCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func tlsNewCA(t *testing.T, dir, name string) *tlsCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(dir, name+"-ca.pem")
	tlsWritePEM(t, file, "CERTIFICATE", der)
	return &tlsCA{cert: cert, key: key, file: file}
}

// issue writes a node certificate for the fixed remoting name and returns
// the cert and key files.
func (ca *tlsCA) issue(t *testing.T, dir, node string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: node},
		DNSNames:     []string{routing.DefaultRemoteTLSServerName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(dir, node+".pem")
	keyFile := filepath.Join(dir, node+"-key.pem")
	tlsWritePEM(t, certFile, "CERTIFICATE", der)
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	tlsWritePEM(t, keyFile, "EC PRIVATE KEY", kb)
	return certFile, keyFile
}

func tlsWritePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func tlsStart(t *testing.T, tok *testkit.Tokens, label, key string, tlsCfg routing.RemoteTLS, seeds ...string) *secGossipNode {
	t.Helper()
	cfg, logs := secGossipConfig(t, label, key, seeds...)
	cfg.Routing.TLS = tlsCfg
	cfg.API.RequestTimeout = 3 * time.Second
	return secStart(t, tok, label, cfg, logs)
}

func TestRemoteMutualTLS(t *testing.T) {
	dir := t.TempDir()
	tok := newTokens()
	gossipKey := secGossipKey(t, 32)
	ca := tlsNewCA(t, dir, "cluster")
	certA, keyA := ca.issue(t, dir, "a")
	certB, keyB := ca.issue(t, dir, "b")
	a := tlsStart(t, tok, "A", gossipKey, routing.RemoteTLS{CertFile: certA, KeyFile: keyA, CAFile: ca.file})
	b := tlsStart(t, tok, "B", gossipKey, routing.RemoteTLS{CertFile: certB, KeyFile: keyB, CAFile: ca.file}, a.gossip)

	deadline := time.Now().Add(15 * time.Second)
	for len(secMembers(t, a)) != 2 || len(secMembers(t, b)) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("A and B did not form a cluster: A sees %v, B sees %v", secMembers(t, a), secMembers(t, b))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A user owned by B, written and read through A: the message crosses
	// the TLS link both ways.
	var uid int64
	for id := int64(1); ; id++ {
		if !a.Router().Owns(id) {
			uid = id
			break
		}
		if id > 1000 {
			t.Fatal("no user owned by B in 1000 ids")
		}
	}
	if _, err := a.API.PutStatus(uid, `{"is_busy":true}`); err != nil {
		t.Fatalf("PUT through A for a user owned by B, over TLS: %v", err)
	}
	p, err := a.API.Presence(uid, uid)
	if err != nil || !p.IsBusy {
		t.Fatalf("GET through A for a user owned by B: %+v %v", p, err)
	}

	// A node with a certificate from another CA joins the gossip (same
	// gossip key) but cannot talk to the others' actors.
	rogueCA := tlsNewCA(t, dir, "rogue")
	certC, keyC := rogueCA.issue(t, dir, "c")
	c := tlsStart(t, tok, "C", gossipKey, routing.RemoteTLS{CertFile: certC, KeyFile: keyC, CAFile: rogueCA.file}, a.gossip)
	for len(secMembers(t, c)) != 3 {
		if time.Now().After(deadline.Add(15 * time.Second)) {
			t.Fatalf("C did not join the gossip: %v", secMembers(t, c))
		}
		time.Sleep(100 * time.Millisecond)
	}
	var foreign int64
	for id := int64(1); id < 5000; id++ {
		if !c.Router().Owns(id) {
			foreign = id
			break
		}
	}
	if _, err := c.API.PutStatus(foreign, `{"is_busy":true}`); err == nil {
		t.Fatalf("a node whose remoting certificate another CA signed wrote user %d on another node", foreign)
	}
}
