package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// Every configuration mistake is refused at load with the variable named;
// the values at the edge of each range are accepted.
func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		env, value string
		ok         bool
	}{
		{"PRESENCE_OFFLINE_AFTER", "-5s", false},
		{"PRESENCE_OFFLINE_AFTER", "0s", false},
		{"PRESENCE_OFFLINE_AFTER", "1s", true},
		{"PRESENCE_DISCONNECT_GRACE", "-1s", false},
		{"PRESENCE_REQUEST_TIMEOUT", "0s", false},
		{"PRESENCE_REQUEST_TIMEOUT", "soon", false},
		{"PRESENCE_READ_TIMEOUT", "-1ms", false},
		{"PRESENCE_SHUTDOWN_TIMEOUT", "0", false},
		{"PRESENCE_WS_PING_INTERVAL", "0s", false},
		{"PRESENCE_REJOIN_INTERVAL", "-15s", false},
		{"PRESENCE_DRAIN_WAIT", "0s", false},
		{"PRESENCE_JWT_LEEWAY", "-1s", false},
		{"PRESENCE_JWT_LEEWAY", "0s", true},
		{"PRESENCE_JWT_RELOAD_INTERVAL", "-1m", false},
		{"PRESENCE_JWT_RELOAD_INTERVAL", "0s", true},
		{"PRESENCE_JWT_SECRET", "12345", false},
		{"PRESENCE_JWT_SECRET", strings.Repeat("s", 31), false},
		{"PRESENCE_JWT_SECRET", strings.Repeat("s", 32), true},
		{"PRESENCE_WS_MAX_FRAME", "0", false},
		{"PRESENCE_WS_MAX_FRAME", "100", false},
		{"PRESENCE_WS_MAX_FRAME", "17MiB", false},
		{"PRESENCE_WS_MAX_FRAME", "16MiB", true},
		{"PRESENCE_WS_MAX_FRAME", "99999999999999999999", false},
		{"PRESENCE_BODY_LIMIT", "512", false},
		{"PRESENCE_BODY_LIMIT", "1GiB", false},
		{"PRESENCE_BODY_LIMIT", "1KiB", true},
		{"PRESENCE_HEADER_LIMIT", "2MiB", false},
		{"PRESENCE_WS_SEND_QUEUE", "-3", false},
		{"PRESENCE_WS_MAX_SUBSCRIPTIONS", "1000000", false},
		{"PRESENCE_WRITE_RATE", "0", false},
		{"PRESENCE_WRITE_RATE", "-1", true},
		{"PRESENCE_WS_FRAME_RATE", "0", false},
		{"PRESENCE_WS_FRAME_RATE", "-1", false},
		{"PRESENCE_INSECURE_CLUSTER", "maybe", false},
		{"PRESENCE_ALLOWED_ORIGINS", "https://app.example.com,http://127.0.0.1:3000", true},
		{"PRESENCE_ALLOWED_ORIGINS", "*", true},
		{"PRESENCE_ALLOWED_ORIGINS", "https://app.example.com/", false},
		{"PRESENCE_ALLOWED_ORIGINS", "app.example.com", false},
		{"PRESENCE_ALLOWED_ORIGINS", "ftp://app.example.com", false},
	} {
		t.Run(tc.env+"="+tc.value, func(t *testing.T) {
			var stderr bytes.Buffer
			_, err := loadConfig(nil, envOf(map[string]string{tc.env: tc.value}), &stderr)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.env) {
				t.Fatalf("error %q does not name %s", err, tc.env)
			}
			if strings.Contains(tc.env, "SECRET") && strings.Contains(err.Error(), tc.value) {
				t.Fatalf("error %q echoes the secret", err)
			}
		})
	}
}

// A flag is checked as its variable is, and named in the error.
func TestConfigFlagValidation(t *testing.T) {
	_, err := loadConfig([]string{"-offline-after", "-5s"}, envOf(nil), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "offline-after") {
		t.Fatalf("-offline-after -5s: %v", err)
	}
}

// With no cluster setting, gossip and remoting bind to loopback; a named
// cluster address lends its host to the other; seeds alone (by variable or
// flag) open both on every interface.
func TestClusterPortsDefaultToLoopback(t *testing.T) {
	for _, tc := range []struct {
		name               string
		env                map[string]string
		args               []string
		wantGossip, wantRm string
	}{
		{"nothing set", nil, nil, "127.0.0.1:7946", "127.0.0.1:8090"},
		{"seeds", map[string]string{"PRESENCE_SEEDS": "a:7946"}, nil, ":7946", ":8090"},
		{"seeds flag", nil, []string{"-seeds", "a:7946"}, ":7946", ":8090"},
		{"gossip addr", map[string]string{"PRESENCE_GOSSIP_ADDR": "10.0.0.5:7946"}, nil, "10.0.0.5:7946", "10.0.0.5:8090"},
		{"gossip addr, all interfaces", map[string]string{"PRESENCE_GOSSIP_ADDR": ":7000", "PRESENCE_SEEDS": "a:7000"}, nil, ":7000", ":8090"},
		{"gossip addr on loopback", map[string]string{"PRESENCE_GOSSIP_ADDR": "127.0.0.1:17946"}, nil, "127.0.0.1:17946", "127.0.0.1:8090"},
		{"remote addr flag", nil, []string{"-remote-addr", "10.0.0.5:8090"}, "10.0.0.5:7946", "10.0.0.5:8090"},
		{"IPv6 remote addr", map[string]string{"PRESENCE_REMOTE_ADDR": "[fd00::2]:9000"}, nil, "[fd00::2]:7946", "[fd00::2]:9000"},
		{"both loopback", map[string]string{"PRESENCE_GOSSIP_ADDR": "127.0.0.1:17946", "PRESENCE_REMOTE_ADDR": "127.0.0.1:18090"}, nil, "127.0.0.1:17946", "127.0.0.1:18090"},
		{"other settings only", map[string]string{"PRESENCE_HTTP_ADDR": ":9000", "PRESENCE_GOSSIP_KEY": "x"}, nil, "127.0.0.1:7946", "127.0.0.1:8090"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(tc.args, envOf(tc.env), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Membership.BindAddr != tc.wantGossip || cfg.Routing.BindAddr != tc.wantRm {
				t.Fatalf("gossip %q remote %q, want %q %q", cfg.Membership.BindAddr, cfg.Routing.BindAddr, tc.wantGossip, tc.wantRm)
			}
		})
	}
}

// The cluster-level refusals name the variables an operator must set.
func TestStartErrorNamesVariables(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"exposed cluster", map[string]string{"PRESENCE_SEEDS": "a:7946", "PRESENCE_STORE": "memory"},
			[]string{"PRESENCE_GOSSIP_KEY", "PRESENCE_REMOTE_TLS_CERT", "PRESENCE_INSECURE_CLUSTER"}},
		{"bad gossip key", map[string]string{"PRESENCE_GOSSIP_KEY": "c2hvcnQ="}, []string{"PRESENCE_GOSSIP_KEY"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(nil, envOf(tc.env), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			err = cfg.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			msg := startError(err, &cfg).Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message does not name %s: %s", w, msg)
				}
			}
		})
	}
	cfg, _ := loadConfig(nil, envOf(map[string]string{"PRESENCE_SEEDS": "a:7946", "PRESENCE_STORE": "memory", "PRESENCE_INSECURE_CLUSTER": "true"}), &bytes.Buffer{})
	if err := cfg.Validate(); err != nil {
		t.Fatalf("PRESENCE_INSECURE_CLUSTER=true still refused: %v", err)
	}
}

// -h names each flag's type and true default; no flag is shown as
// "value".
func TestUsage(t *testing.T) {
	var out bytes.Buffer
	printUsage(&out)
	s := out.String()
	for _, want := range []string{
		"-offline-after duration", "default 5m0s", "-ws-max-frame size", "default 65536",
		"-seeds list", "-standalone bool", "-write-rate number", "default presence-remote",
		"default 127.0.0.1:7946", "-version",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("-h lacks %q", want)
		}
	}
	if strings.Contains(s, " value\n") {
		t.Errorf("-h shows a type as \"value\":\n%s", s)
	}
}

// The printed configuration is aligned and shows the true defaults.
func TestPrintConfig(t *testing.T) {
	cfg := defaultConfig()
	cfg.Auth.Secret = strings.Repeat("k", 32)
	var out bytes.Buffer
	printConfig(&out, &cfg)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")[1:]
	col := -1
	for _, l := range lines {
		f := strings.Fields(l)
		i := strings.Index(l[len("  "+f[0]):], f[1]) + len("  "+f[0])
		if col == -1 {
			col = i
		}
		if i != col {
			t.Errorf("misaligned: %q (value at %d, others at %d)", l, i, col)
		}
	}
	s := out.String()
	// The alignment is checked above; here each variable and its value.
	for _, want := range [][2]string{{"PRESENCE_REMOTE_TLS_SERVER_NAME", "presence-remote"}, {"PRESENCE_JWT_SECRET", "****"},
		{"PRESENCE_GOSSIP_ADDR", "127.0.0.1:7946"}, {"PRESENCE_OFFLINE_AFTER", (5 * time.Minute).String()}} {
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(want[0]) + ` +` + regexp.QuoteMeta(want[1]) + `$`).MatchString(s) {
			t.Errorf("printed config lacks %s = %s:\n%s", want[0], want[1], s)
		}
	}
	if strings.Contains(s, strings.Repeat("k", 32)) {
		t.Error("the secret is printed")
	}
}
