package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// MinRSABits is the smallest RSA modulus accepted as a verification key.
// Shorter keys are factorable by a determined attacker, and accepting one
// would let whoever factors it mint admin tokens.
const MinRSABits = 2048

const (
	algHS256 = "HS256"
	algRS256 = "RS256"
	algES256 = "ES256"
	algEdDSA = "EdDSA"
)

// publicKey is one verification key with the algorithm its type pins.
type publicKey struct {
	kid string
	alg string
	key any // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

type kidAlg struct{ kid, alg string }

// keySet is an immutable snapshot of the trusted keys; Reload replaces the
// whole snapshot, so a Verify in flight sees either the old or the new keys,
// never a mix. Everything Verify needs is precomputed, including the
// interface values the Keyfunc returns, so the hot path does not allocate
// for key selection.
type keySet struct {
	parser  *jwt.Parser
	keyfunc jwt.Keyfunc
	algs    []string
	hmac    any            // []byte secret, nil when HS256 is off
	all     map[string]any // alg -> key or jwt.VerificationKeySet
	anon    map[string]any // alg -> keys without a kid
	byKid   map[kidAlg]any
	hasKids bool
}

func newKeySet(cfg Config, pub []publicKey) (*keySet, error) {
	ks := &keySet{
		all:   map[string]any{},
		anon:  map[string]any{},
		byKid: map[kidAlg]any{},
	}
	if len(cfg.Secret) > 0 {
		ks.hmac = cfg.Secret
		ks.algs = append(ks.algs, algHS256)
	}
	allByAlg := map[string][]jwt.VerificationKey{}
	anonByAlg := map[string][]jwt.VerificationKey{}
	for _, k := range pub {
		allByAlg[k.alg] = append(allByAlg[k.alg], k.key)
		if k.kid == "" {
			anonByAlg[k.alg] = append(anonByAlg[k.alg], k.key)
			continue
		}
		ka := kidAlg{k.kid, k.alg}
		if _, dup := ks.byKid[ka]; dup {
			return nil, fmt.Errorf("auth: duplicate %s key id %q", k.alg, k.kid)
		}
		ks.byKid[ka] = k.key
		ks.hasKids = true
	}
	for alg, keys := range allByAlg {
		ks.all[alg] = keyOrSet(keys)
		ks.algs = append(ks.algs, alg)
	}
	for alg, keys := range anonByAlg {
		ks.anon[alg] = keyOrSet(keys)
	}
	slices.Sort(ks.algs)
	if len(ks.algs) == 0 {
		return nil, errors.New("auth: no usable key configured")
	}

	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(ks.algs),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	}
	if leeway > 0 {
		opts = append(opts, jwt.WithLeeway(leeway))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	ks.parser = jwt.NewParser(opts...)
	ks.keyfunc = ks.keyFor
	return ks, nil
}

func keyOrSet(keys []jwt.VerificationKey) any {
	if len(keys) == 1 {
		return keys[0]
	}
	return jwt.VerificationKeySet{Keys: keys}
}

// keyFor returns only keys whose type matches the token's algorithm, so an
// RSA public key can never be handed to the HMAC verifier (the classic
// RS256/HS256 confusion). The parser has already refused algorithms outside
// ks.algs before calling it.
func (ks *keySet) keyFor(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 4.1.11: extensions we do not understand must be refused.
		return nil, errors.New("crit header is not supported")
	}
	alg := t.Method.Alg()
	if alg == algHS256 {
		if ks.hmac == nil {
			return nil, errors.New("HS256 is not enabled")
		}
		return ks.hmac, nil
	}
	if kid, _ := t.Header["kid"].(string); kid != "" && ks.hasKids {
		if k, ok := ks.byKid[kidAlg{kid, alg}]; ok {
			return k, nil
		}
		if k, ok := ks.anon[alg]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("no %s key with kid %q", alg, kid)
	}
	if k, ok := ks.all[alg]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("no %s key", alg)
}

// loadPublicKeysFile reads a PEM bundle or a JWKS document; the format is
// told by the first non-blank byte, so operators need not say which.
func loadPublicKeysFile(path string) ([]publicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: public keys: %w", err)
	}
	trimmed := bytes.TrimSpace(data)
	var keys []publicKey
	if len(trimmed) > 0 && trimmed[0] == '{' {
		keys, err = parseJWKS(trimmed)
	} else {
		keys, err = parsePEM(data)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: public keys %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("auth: public keys %s: no usable key", path)
	}
	return keys, nil
}

func parsePEM(data []byte) ([]publicKey, error) {
	var keys []publicKey
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			// The certificate only carries the key; its validity period and
			// chain are the operator's business, as with a bare key.
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = cert.PublicKey
			}
		default:
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("PEM block %d is a %s: give public keys only", n, block.Type)
			}
			return nil, fmt.Errorf("PEM block %d: unsupported type %q", n, block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", n, block.Type, err)
		}
		pk, err := classify(key)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", n, block.Type, err)
		}
		keys = append(keys, pk)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM block found")
	}
	return keys, nil
}

// classify pins the algorithm from the key type and refuses keys we would
// not trust to sign admin tokens.
func classify(key any) (publicKey, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return publicKey{}, fmt.Errorf("RSA key of %d bits, need at least %d", k.N.BitLen(), MinRSABits)
		}
		if k.E < 3 || k.E%2 == 0 {
			return publicKey{}, fmt.Errorf("RSA public exponent %d is not valid (want an odd exponent of at least 3)", k.E)
		}
		return publicKey{alg: algRS256, key: k}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return publicKey{}, fmt.Errorf("ECDSA curve %s is not supported (only P-256, for ES256)", k.Curve.Params().Name)
		}
		return publicKey{alg: algES256, key: k}, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return publicKey{}, errors.New("bad Ed25519 key size")
		}
		return publicKey{alg: algEdDSA, key: k}, nil
	default:
		return publicKey{}, fmt.Errorf("unsupported key type %T", key)
	}
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS accepts a JWKS ({"keys": [...]}) or a single JWK. Keys this
// service cannot use (encryption keys, symmetric keys, other curves or
// algorithms) are skipped, since an identity provider's published set often
// holds some; a supported key with broken material is an error, so a
// corrupted file is not half-loaded.
func parseJWKS(data []byte) ([]publicKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
		Kty  string            `json:"kty"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	raws := doc.Keys
	if raws == nil && doc.Kty != "" {
		raws = []json.RawMessage{data}
	}
	if raws == nil {
		return nil, errors.New(`JWKS: no "keys" array`)
	}
	var (
		keys    []publicKey
		skipped []string
	)
	for i, raw := range raws {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, fmt.Errorf("JWKS key %d: %w", i, err)
		}
		pk, skip, err := j.publicKey()
		if err != nil {
			return nil, fmt.Errorf("JWKS key %d (kid %q): %w", i, j.Kid, err)
		}
		if skip != "" {
			skipped = append(skipped, fmt.Sprintf("key %d (kid %q): %s", i, j.Kid, skip))
			continue
		}
		keys = append(keys, pk)
	}
	if len(keys) == 0 {
		if len(skipped) > 0 {
			return nil, fmt.Errorf("JWKS: no usable key; skipped %s", strings.Join(skipped, "; "))
		}
		return nil, errors.New("JWKS: no keys")
	}
	return keys, nil
}

// publicKey converts the JWK; a non-empty skip says why the key is not for us.
func (j *jwk) publicKey() (pk publicKey, skip string, err error) {
	if j.Use != "" && j.Use != "sig" {
		return pk, fmt.Sprintf("use %q", j.Use), nil
	}
	var want string
	switch {
	case j.Kty == "RSA":
		want = algRS256
	case j.Kty == "EC" && j.Crv == "P-256":
		want = algES256
	case j.Kty == "OKP" && j.Crv == "Ed25519":
		want = algEdDSA
	default:
		return pk, fmt.Sprintf("unsupported kty %q crv %q", j.Kty, j.Crv), nil
	}
	if j.Alg != "" && j.Alg != want {
		return pk, fmt.Sprintf("alg %q (only %s for this key type)", j.Alg, want), nil
	}
	var key any
	switch want {
	case algRS256:
		n, err := b64(j.N, "n", 0)
		if err != nil {
			return pk, "", err
		}
		e, err := b64(j.E, "e", 0)
		if err != nil {
			return pk, "", err
		}
		eb := new(big.Int).SetBytes(e)
		if !eb.IsInt64() || eb.Int64() < 3 || eb.Int64() > 1<<31-1 || eb.Bit(0) == 0 {
			return pk, "", errors.New("bad RSA exponent")
		}
		key = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(eb.Int64())}
	case algES256:
		x, err := b64(j.X, "x", 32)
		if err != nil {
			return pk, "", err
		}
		y, err := b64(j.Y, "y", 32)
		if err != nil {
			return pk, "", err
		}
		point := append(append([]byte{4}, x...), y...)
		if key, err = ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point); err != nil {
			return pk, "", err
		}
	case algEdDSA:
		x, err := b64(j.X, "x", ed25519.PublicKeySize)
		if err != nil {
			return pk, "", err
		}
		key = ed25519.PublicKey(x)
	}
	pk, err = classify(key)
	if err != nil {
		return pk, "", err
	}
	pk.kid = j.Kid
	return pk, "", nil
}

// b64 decodes a base64url JWK member; size > 0 demands that exact length.
func b64(s, name string, size int) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("missing %q", name)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("%q: %w", name, err)
	}
	if size > 0 && len(b) != size {
		return nil, fmt.Errorf("%q is %d bytes, want %d", name, len(b), size)
	}
	return b, nil
}
