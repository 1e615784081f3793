package loadgen

import (
	"strings"
	"testing"
	"time"
)

// Validate names the presencectl flag to fix; DefaultConfig is valid.
func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string // substring of the error; "" for none
	}{
		{name: "defaults", edit: func(*Config) {}},
		{name: "no url", edit: func(c *Config) { c.URLs = nil }, want: "--url is required"},
		{name: "remote url", edit: func(c *Config) { c.URLs = []string{"http://10.1.2.3:8000"} }, want: "not a loopback address"},
		{name: "https url", edit: func(c *Config) { c.URLs = []string{"https://127.0.0.1:8000"} }, want: "want an http:// URL"},
		{name: "remote pprof", edit: func(c *Config) { c.PprofURLs = []string{"http://example.com:6060"} }, want: "--pprof-url"},
		{name: "no users", edit: func(c *Config) { c.Topology.Users = 0 }, want: "--users must be"},
		{name: "sessions above users", edit: func(c *Config) { c.Topology.Sessions = 1001 }, want: "--sessions must be"},
		{name: "all sessions", edit: func(c *Config) { c.Topology.Sessions = -1 }},
		{name: "too many contacts", edit: func(c *Config) { c.Topology.Contacts = 1000 }, want: "--contacts"},
		{name: "hot + contacts", edit: func(c *Config) { c.Topology.Users = 5000; c.Topology.Hot = 995; c.Topology.Contacts = 10 }, want: "subscription limit"},
		{name: "negative rate", edit: func(c *Config) { c.ReadRate = -1 }, want: "rates must not be negative"},
		{name: "batch size", edit: func(c *Config) { c.BatchSize = 51 }, want: "--batch-size"},
		{name: "duration", edit: func(c *Config) { c.Duration = MaxDuration + time.Second }, want: "--duration"},
		{name: "progress", edit: func(c *Config) { c.Progress = time.Millisecond }, want: "--progress"},
		{name: "workers", edit: func(c *Config) { c.Workers = MaxWorkers + 1 }, want: "--workers must be at most"},
		{name: "source ips", edit: func(c *Config) { c.SourceIPs = 201 }, want: "--source-ips"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// The automatic settings resolve as the flags document them.
func TestConfigPlan(t *testing.T) {
	tests := []struct {
		name                 string
		sessions, workers    int
		sourceIPs            int
		wantWorkers, wantIPs int
		wantInProcess        bool
	}{
		{name: "auto", sessions: 12000, workers: -1, wantWorkers: 3, wantIPs: 6},
		{name: "in process", sessions: 100, workers: 0, wantWorkers: 1, wantIPs: 2, wantInProcess: true},
		{name: "no sessions", sessions: 0, workers: -1, wantWorkers: 0, wantIPs: 2, wantInProcess: true},
		{name: "explicit", sessions: 100, workers: 4, sourceIPs: 3, wantWorkers: 4, wantIPs: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Topology.Users = 20000
			c.Topology.Sessions, c.Workers, c.SourceIPs = tc.sessions, tc.workers, tc.sourceIPs
			p := c.plan()
			if p.workers != tc.wantWorkers || p.inProcess != tc.wantInProcess || len(p.sourceIPs) != tc.wantIPs {
				t.Fatalf("workers %d in-process %v ips %v", p.workers, p.inProcess, p.sourceIPs)
			}
			if p.sourceIPs[0] != "127.0.0.10" {
				t.Fatalf("first source address %s", p.sourceIPs[0])
			}
		})
	}
	c := DefaultConfig()
	if p := c.plan(); p.Topology.Sessions != c.Topology.Users {
		t.Fatalf("sessions -1 resolved to %d, want every user (%d)", p.Topology.Sessions, c.Topology.Users)
	}
}

func TestRequireLoopback(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:1", true}, {"http://localhost:1", true}, {"http://[::1]:1", true}, {"http://127.9.9.9:1", true},
		{"http://example.com:80", false}, {"http://10.1.2.3:8000", false}, {"ws://127.0.0.1:1", false},
	} {
		if err := RequireLoopbackURL(tc.url); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.url, err)
		}
	}
	if err := RequireLoopbackAddr("127.0.0.1:8100"); err != nil {
		t.Error(err)
	}
	if err := RequireLoopbackAddr("0.0.0.0:8100"); err == nil {
		t.Error("0.0.0.0 accepted")
	}
}
