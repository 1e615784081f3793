package signing

import (
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks specification's published test vector (the
// reference libraries' TestWebhookSign).
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specPayload   = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignSpecVector(t *testing.T) {
	s, err := NewSigner(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sign(specID, time.Unix(specTimestamp, 0), []byte(specPayload)); got != specSignature {
		t.Fatalf("signature %s, want %s", got, specSignature)
	}
}

func TestVerify(t *testing.T) {
	s, _ := NewSigner(specSecret)
	other, _ := NewSigner("whsec_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	at := time.Unix(specTimestamp, 0)
	ts := "1614265330"
	tests := []struct {
		name    string
		signer  *Signer
		id, ts  string
		sigs    string
		body    string
		now     time.Time
		wantErr bool
	}{
		{"valid", s, specID, ts, specSignature, specPayload, at, false},
		{"valid among others", s, specID, ts, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,x " + specSignature, specPayload, at, false},
		{"other secret", other, specID, ts, specSignature, specPayload, at, true},
		{"body changed", s, specID, ts, specSignature, specPayload + " ", at, true},
		{"id changed", s, specID + "x", ts, specSignature, specPayload, at, true},
		{"too old", s, specID, ts, specSignature, specPayload, at.Add(6 * time.Minute), true},
		{"too new", s, specID, ts, specSignature, specPayload, at.Add(-6 * time.Minute), true},
		{"missing id", s, "", ts, specSignature, specPayload, at, true},
		{"bad timestamp", s, specID, "x", specSignature, specPayload, at, true},
		{"not v1", s, specID, ts, strings.Replace(specSignature, "v1,", "v2,", 1), specPayload, at, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.signer.Verify(tc.id, tc.ts, tc.sigs, []byte(tc.body), tc.now, 5*time.Minute)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

func TestParseSecret(t *testing.T) {
	tests := []struct {
		in      string
		wantLen int
		wantErr bool
	}{
		{specSecret, 24, false},
		{"a-raw-secret-of-some-length", 27, false},
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 32, false}, // no prefix: raw bytes
		{"whsec_!!notbase64", 0, true},
		{"whsec_AAAA", 0, true}, // 3 bytes
		{"short", 0, true},
	}
	for _, tc := range tests {
		key, err := ParseSecret(tc.in)
		if (err != nil) != tc.wantErr || len(key) != tc.wantLen {
			t.Errorf("ParseSecret(%q) = %d bytes, %v; want %d bytes, error %v", tc.in, len(key), err, tc.wantLen, tc.wantErr)
		}
	}
}
