package contract_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// metricName finds metric names in PromQL: every name the project exports
// starts with presence_, process_ or go_ (up is Prometheus's own).
var metricName = regexp.MustCompile(`\b(?:presence|process|go)_[a-zA-Z0-9_]+\b`)

// exportedOnFirstEvent are labelled metrics a node exports only once a
// label value occurred (a store error on some operation): a fresh node
// cannot show them.
var exportedOnFirstEvent = map[string]string{
	"presence_store_errors_total": "labelled by op; appears at the first failed store call",
}

// TestDashboardAndAlertMetricsAreExported checks that every metric the
// Grafana dashboard and the alert rules name is exported by a running
// node's /metrics.
func TestDashboardAndAlertMetricsAreExported(t *testing.T) {
	used := map[string][]string{} // name -> files naming it
	for file, exprs := range map[string][]string{
		"deploy/grafana/presence-dashboard.json": dashboardExprs(t, "../../deploy/grafana/presence-dashboard.json"),
		"deploy/prometheus/presence-alerts.yml":  ruleExprs(t, "../../deploy/prometheus/presence-alerts.yml"),
	} {
		if len(exprs) == 0 {
			t.Fatalf("%s: no expressions found", file)
		}
		for _, e := range exprs {
			for _, name := range metricName.FindAllString(e, -1) {
				used[name] = append(used[name], file)
			}
		}
	}

	n := startNode(t)
	alice := token(t, 123, "alice", false)
	n.call(t, "POST", "/users/me/heartbeat", alice, "", nil)
	n.call(t, "GET", "/users/123/presence", alice, "", nil)
	_, body := n.call(t, "GET", "/metrics", "", "", nil)
	exported := scrapedNames(body)

	var missing []string
	for name, files := range used {
		if exported[name] {
			continue
		}
		if why, ok := exportedOnFirstEvent[name]; ok {
			t.Logf("%s not on a fresh node (%s)", name, why)
			continue
		}
		missing = append(missing, name+" (in "+strings.Join(files, ", ")+")")
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("metrics named by the dashboard or the alert rules that the node does not export:\n  %s", strings.Join(missing, "\n  "))
	}
}

// scrapedNames returns the sample names of a text exposition (histograms
// show as their _bucket, _sum and _count series) and the declared names.
func scrapedNames(body []byte) map[string]bool {
	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			names[strings.Fields(rest)[0]] = true
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// dashboardExprs returns every PromQL expression of a Grafana dashboard:
// panel targets (rows included) and template variable queries.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	var d struct {
		Panels     []dashPanel `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	readJSON(t, path, &d)
	var out []string
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		out = append(out, v.Definition)
	}
	return out
}

type dashPanel struct {
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"`
}

// ruleExprs returns every expression of a Prometheus rule file.
func ruleExprs(t *testing.T, path string) []string {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []struct {
				Expr string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	return out
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
