package manifests

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// composeService is the part of a compose service the checks read.
type composeService struct {
	Image           string            `yaml:"image"`
	Hostname        string            `yaml:"hostname"`
	Environment     map[string]string `yaml:"environment"`
	Ports           []string          `yaml:"ports"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
	Healthcheck     *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	ExtraHosts []string `yaml:"extra_hosts"`
	Profiles   []string `yaml:"profiles"`
	Networks   any      `yaml:"networks"`
}

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

func loadCompose(t *testing.T, path string) composeFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

// defaultOf resolves "${VAR:-default}" to its default, and a plain value to
// itself.
func defaultOf(v string) string {
	if m := regexp.MustCompile(`^\$\{[A-Z0-9_]+:-([^}]*)\}$`).FindStringSubmatch(v); m != nil {
		return m[1]
	}
	return v
}

func TestCompose(t *testing.T) {
	settings := knownSettings(t)
	base := loadCompose(t, filepath.Join(deployDir, "docker-compose.yml"))
	nodes := []string{"node1", "node2", "node3"}
	if _, ok := base.Services["postgres"]; !ok {
		t.Error("docker-compose.yml has no postgres service")
	}
	for _, name := range nodes {
		s, ok := base.Services[name]
		if !ok {
			t.Errorf("no service %s", name)
			continue
		}
		env := s.Environment
		for k := range env {
			if strings.HasPrefix(k, "PRESENCE_") && !settings[k] {
				t.Errorf("%s: %s is no presenced setting", name, k)
			}
		}
		if env["PRESENCE_NODE_NAME"] != name {
			t.Errorf("%s: PRESENCE_NODE_NAME %q", name, env["PRESENCE_NODE_NAME"])
		}
		for _, seed := range strings.Split(env["PRESENCE_SEEDS"], ",") {
			host, port, err := splitSeed(seed)
			if _, ok := base.Services[host]; !ok || err != nil || port != 7946 {
				t.Errorf("%s: seed %q is not service:7946", name, seed)
			}
		}
		if !strings.Contains(env["PRESENCE_STORE"], "postgres://") || !strings.Contains(env["PRESENCE_STORE"], "@postgres:") {
			t.Errorf("%s: PRESENCE_STORE %q does not default to the postgres service", name, env["PRESENCE_STORE"])
		}
		// A node with no cluster address binds gossip and remoting to
		// loopback; a compose node names them (and proves membership
		// with the required key).
		if env["PRESENCE_GOSSIP_ADDR"] != ":7946" || env["PRESENCE_REMOTE_ADDR"] != ":8090" {
			t.Errorf("%s: gossip/remote bind %q/%q, want :7946/:8090", name, env["PRESENCE_GOSSIP_ADDR"], env["PRESENCE_REMOTE_ADDR"])
		}
		for _, secret := range []string{"PRESENCE_JWT_SECRET", "PRESENCE_GOSSIP_KEY"} {
			if !strings.HasPrefix(env[secret], "${"+secret+":?") {
				t.Errorf("%s: %s = %q, want it required from the environment (${%s:?...})", name, secret, env[secret], secret)
			}
		}
		if len(s.Ports) != 1 || !strings.HasPrefix(s.Ports[0], "127.0.0.1:") || !strings.HasSuffix(s.Ports[0], ":8000") {
			t.Errorf("%s: ports %v, want one 127.0.0.1:PORT:8000", name, s.Ports)
		}
		if s.Healthcheck == nil || !strings.Contains(strings.Join(s.Healthcheck.Test, " "), "presencectl health") ||
			!strings.Contains(strings.Join(s.Healthcheck.Test, " "), "/readyz") {
			t.Errorf("%s: want a presencectl health check of /readyz", name)
		}
		drain, err1 := time.ParseDuration(defaultOf(env["PRESENCE_DRAIN_WAIT"]))
		shutdown, err2 := time.ParseDuration(defaultOf(env["PRESENCE_SHUTDOWN_TIMEOUT"]))
		grace, err3 := time.ParseDuration(s.StopGracePeriod)
		if err1 != nil || err2 != nil || err3 != nil {
			t.Errorf("%s: durations: %v %v %v", name, err1, err2, err3)
		} else if grace < drain+shutdown {
			t.Errorf("%s: stop_grace_period %v < drain %v + shutdown timeout %v", name, grace, drain, shutdown)
		}
	}

	host := loadCompose(t, filepath.Join(deployDir, "docker-compose.host-postgres.yml"))
	if pg := host.Services["postgres"]; len(pg.Profiles) == 0 {
		t.Error("host-postgres override: the postgres service must be disabled by a profile")
	}
	for _, name := range nodes {
		s := host.Services[name]
		if !strings.Contains(strings.Join(s.ExtraHosts, " "), "host.docker.internal:host-gateway") {
			t.Errorf("host-postgres override: %s has no host.docker.internal:host-gateway", name)
		}
		if !strings.Contains(s.Environment["PRESENCE_STORE"], "${PRESENCE_STORE:?") {
			t.Errorf("host-postgres override: %s must require PRESENCE_STORE from the environment", name)
		}
	}

	test := loadCompose(t, "../testdata/compose.test.yml")
	for i, name := range nodes {
		s, ok := test.Services[name]
		if !ok {
			t.Errorf("test override: no %s", name)
			continue
		}
		ip := "${PRESENCE_CT_NET}." + string(rune('1')) + string(rune('1'+i))
		if s.Environment["PRESENCE_GOSSIP_ADVERTISE"] != ip+":7946" || s.Environment["PRESENCE_REMOTE_ADVERTISE"] != ip+":8090" {
			t.Errorf("test override: %s advertises %q/%q, want %s", name, s.Environment["PRESENCE_GOSSIP_ADVERTISE"], s.Environment["PRESENCE_REMOTE_ADVERTISE"], ip)
		}
	}
}
