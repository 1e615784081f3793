// Package manifests checks the deploy files without Docker or Kubernetes:
// every YAML parses into the fields we mean (unknown fields are errors, so a
// typo such as publishNotReadyAddress fails here instead of being ignored by
// the API server), and the objects agree with each other, with the image
// (deploy/Dockerfile) and with the daemon's settings (cmd/presenced).
package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const (
	k8sDir      = "../../../deploy/kubernetes"
	deployDir   = "../../../deploy"
	settingsSrc = "../../../cmd/presenced/config.go"
)

// ------------------------------------------------------------- k8s types
//
// The subset of the Kubernetes API the manifests use. Decoding is strict: a
// field that is valid Kubernetes but missing here must be added here.

type Meta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type LabelSelector struct {
	MatchLabels      map[string]string `yaml:"matchLabels"`
	MatchExpressions []any             `yaml:"matchExpressions"`
}

type Service struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   Meta   `yaml:"metadata"`
	Spec       struct {
		Type                     string            `yaml:"type"`
		ClusterIP                string            `yaml:"clusterIP"`
		PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
		Selector                 map[string]string `yaml:"selector"`
		SessionAffinity          string            `yaml:"sessionAffinity"`
		Ports                    []struct {
			Name       string    `yaml:"name"`
			Port       int       `yaml:"port"`
			TargetPort yaml.Node `yaml:"targetPort"`
			Protocol   string    `yaml:"protocol"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type StatefulSet struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   Meta   `yaml:"metadata"`
	Spec       struct {
		ServiceName         string `yaml:"serviceName"`
		Replicas            int    `yaml:"replicas"`
		PodManagementPolicy string `yaml:"podManagementPolicy"`
		MinReadySeconds     int    `yaml:"minReadySeconds"`
		UpdateStrategy      struct {
			Type          string `yaml:"type"`
			RollingUpdate *struct {
				Partition      int       `yaml:"partition"`
				MaxUnavailable yaml.Node `yaml:"maxUnavailable"`
			} `yaml:"rollingUpdate"`
		} `yaml:"updateStrategy"`
		Selector LabelSelector `yaml:"selector"`
		Template struct {
			Metadata Meta    `yaml:"metadata"`
			Spec     PodSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type PodSpec struct {
	TerminationGracePeriodSeconds *int              `yaml:"terminationGracePeriodSeconds"`
	EnableServiceLinks            *bool             `yaml:"enableServiceLinks"`
	AutomountServiceAccountToken  *bool             `yaml:"automountServiceAccountToken"`
	ServiceAccountName            string            `yaml:"serviceAccountName"`
	NodeSelector                  map[string]string `yaml:"nodeSelector"`
	Tolerations                   []any             `yaml:"tolerations"`
	TopologySpreadConstraints     []any             `yaml:"topologySpreadConstraints"`
	Affinity                      *struct {
		PodAntiAffinity *struct {
			PreferredDuringSchedulingIgnoredDuringExecution []struct {
				Weight          int `yaml:"weight"`
				PodAffinityTerm struct {
					TopologyKey   string        `yaml:"topologyKey"`
					LabelSelector LabelSelector `yaml:"labelSelector"`
				} `yaml:"podAffinityTerm"`
			} `yaml:"preferredDuringSchedulingIgnoredDuringExecution"`
			RequiredDuringSchedulingIgnoredDuringExecution []any `yaml:"requiredDuringSchedulingIgnoredDuringExecution"`
		} `yaml:"podAntiAffinity"`
	} `yaml:"affinity"`
	SecurityContext *struct {
		RunAsNonRoot   *bool `yaml:"runAsNonRoot"`
		RunAsUser      *int  `yaml:"runAsUser"`
		RunAsGroup     *int  `yaml:"runAsGroup"`
		FSGroup        *int  `yaml:"fsGroup"`
		SeccompProfile *struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	Containers []Container `yaml:"containers"`
	Volumes    []struct {
		Name     string `yaml:"name"`
		EmptyDir *struct {
			Medium    string `yaml:"medium"`
			SizeLimit string `yaml:"sizeLimit"`
		} `yaml:"emptyDir"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
	} `yaml:"volumes"`
}

type Container struct {
	Name            string   `yaml:"name"`
	Image           string   `yaml:"image"`
	ImagePullPolicy string   `yaml:"imagePullPolicy"`
	Command         []string `yaml:"command"`
	Args            []string `yaml:"args"`
	Ports           []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath  string `yaml:"fieldPath"`
				APIVersion string `yaml:"apiVersion"`
			} `yaml:"fieldRef"`
			SecretKeyRef *struct {
				Name     string `yaml:"name"`
				Key      string `yaml:"key"`
				Optional *bool  `yaml:"optional"`
			} `yaml:"secretKeyRef"`
			ResourceFieldRef *struct {
				Resource      string `yaml:"resource"`
				ContainerName string `yaml:"containerName"`
				Divisor       string `yaml:"divisor"`
			} `yaml:"resourceFieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	ReadinessProbe *Probe `yaml:"readinessProbe"`
	LivenessProbe  *Probe `yaml:"livenessProbe"`
	StartupProbe   *Probe `yaml:"startupProbe"`
	Lifecycle      *struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
			Exec    any `yaml:"exec"`
			HTTPGet any `yaml:"httpGet"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		Capabilities             *struct {
			Drop []string `yaml:"drop"`
			Add  []string `yaml:"add"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type Probe struct {
	HTTPGet *struct {
		Path   string    `yaml:"path"`
		Port   yaml.Node `yaml:"port"`
		Scheme string    `yaml:"scheme"`
	} `yaml:"httpGet"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
	FailureThreshold    int `yaml:"failureThreshold"`
	SuccessThreshold    int `yaml:"successThreshold"`
}

type PodDisruptionBudget struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   Meta   `yaml:"metadata"`
	Spec       struct {
		MaxUnavailable yaml.Node     `yaml:"maxUnavailable"`
		MinAvailable   yaml.Node     `yaml:"minAvailable"`
		Selector       LabelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

type NetworkPolicy struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   Meta   `yaml:"metadata"`
	Spec       struct {
		PodSelector LabelSelector `yaml:"podSelector"`
		PolicyTypes []string      `yaml:"policyTypes"`
		Ingress     []struct {
			From []struct {
				PodSelector       *LabelSelector `yaml:"podSelector"`
				NamespaceSelector *LabelSelector `yaml:"namespaceSelector"`
				IPBlock           any            `yaml:"ipBlock"`
			} `yaml:"from"`
			Ports []struct {
				Port     yaml.Node `yaml:"port"`
				Protocol string    `yaml:"protocol"`
			} `yaml:"ports"`
		} `yaml:"ingress"`
		Egress []any `yaml:"egress"`
	} `yaml:"spec"`
}

type Secret struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   Meta              `yaml:"metadata"`
	Type       string            `yaml:"type"`
	StringData map[string]string `yaml:"stringData"`
	Data       map[string]string `yaml:"data"`
}

type Kustomization struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Labels     []struct {
		Pairs            map[string]string `yaml:"pairs"`
		IncludeSelectors bool              `yaml:"includeSelectors"`
		IncludeTemplates bool              `yaml:"includeTemplates"`
	} `yaml:"labels"`
	Resources []string `yaml:"resources"`
	Images    []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
	} `yaml:"images"`
}

// objects is everything in deploy/kubernetes, by kind.
type objects struct {
	services     []*Service
	statefulSets []*StatefulSet
	pdbs         []*PodDisruptionBudget
	netpols      []*NetworkPolicy
	secrets      []*Secret
	kustomize    *Kustomization
	files        map[string][]string // file -> "Kind/name" it holds
}

// strict decodes one YAML document into v, refusing unknown fields.
func strict(doc []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// documents splits a YAML stream into its documents, re-encoded.
func documents(b []byte) ([][]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs [][]byte
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(n.Content) == 0 {
			continue
		}
		out, err := yaml.Marshal(&n)
		if err != nil {
			return nil, err
		}
		docs = append(docs, out)
	}
}

func loadK8s(t *testing.T) *objects {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no YAML in %s: %v", k8sDir, err)
	}
	o := &objects{files: map[string][]string{}}
	seen := map[string]string{}
	for _, p := range paths {
		base := filepath.Base(p)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := documents(b)
		if err != nil {
			t.Errorf("%s: %v", base, err)
			continue
		}
		for i, doc := range docs {
			var head struct {
				APIVersion string `yaml:"apiVersion"`
				Kind       string `yaml:"kind"`
				Metadata   Meta   `yaml:"metadata"`
			}
			if err := yaml.Unmarshal(doc, &head); err != nil {
				t.Errorf("%s doc %d: %v", base, i, err)
				continue
			}
			where := fmt.Sprintf("%s (%s %q)", base, head.Kind, head.Metadata.Name)
			var v any
			want := ""
			switch head.Kind {
			case "Service":
				s := &Service{}
				o.services, v, want = append(o.services, s), s, "v1"
			case "StatefulSet":
				s := &StatefulSet{}
				o.statefulSets, v, want = append(o.statefulSets, s), s, "apps/v1"
			case "PodDisruptionBudget":
				s := &PodDisruptionBudget{}
				o.pdbs, v, want = append(o.pdbs, s), s, "policy/v1"
			case "NetworkPolicy":
				s := &NetworkPolicy{}
				o.netpols, v, want = append(o.netpols, s), s, "networking.k8s.io/v1"
			case "Secret":
				s := &Secret{}
				o.secrets, v, want = append(o.secrets, s), s, "v1"
			case "Kustomization":
				s := &Kustomization{}
				o.kustomize, v, want = s, s, "kustomize.config.k8s.io/v1beta1"
			default:
				t.Errorf("%s: kind %q is not checked by this test; add it", where, head.Kind)
				continue
			}
			if head.APIVersion != want {
				t.Errorf("%s: apiVersion %q, want %q", where, head.APIVersion, want)
			}
			if err := strict(doc, v); err != nil {
				msg := regexp.MustCompile(` in type [^\n]*`).ReplaceAllString(err.Error(), "")
				t.Errorf("%s: %s (a valid Kubernetes field missing from this test's types must be added there)", where, msg)
			}
			if head.Kind != "Kustomization" {
				if head.Metadata.Name == "" {
					t.Errorf("%s: no metadata.name", where)
				}
				key := head.Kind + "/" + head.Metadata.Name
				if prev, dup := seen[key]; dup {
					t.Errorf("%s: %s also defined in %s", base, key, prev)
				}
				seen[key] = base
				o.files[base] = append(o.files[base], key)
			}
		}
	}
	return o
}

// matches reports whether every pair of sel is among labels.
func matches(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// portRef resolves a port given by name or number against a container.
func portRef(n yaml.Node, c *Container) (num int, proto string, ok bool) {
	if n.Kind == 0 {
		return 0, "", false
	}
	if v, err := strconv.Atoi(n.Value); err == nil {
		for _, p := range c.Ports {
			if p.ContainerPort == v {
				return v, protoOr(p.Protocol), true
			}
		}
		return v, "", false
	}
	for _, p := range c.Ports {
		if p.Name == n.Value {
			return p.ContainerPort, protoOr(p.Protocol), true
		}
	}
	return 0, "", false
}

func protoOr(p string) string {
	if p == "" {
		return "TCP"
	}
	return p
}

// knownSettings are the PRESENCE_* variables presenced reads.
func knownSettings(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(settingsSrc)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, s := range regexp.MustCompile(`"(PRESENCE_[A-Z0-9_]+)"`).FindAllStringSubmatch(string(b), -1) {
		m[s[1]] = true
	}
	if len(m) < 20 {
		t.Fatalf("found only %d PRESENCE_* settings in %s", len(m), settingsSrc)
	}
	return m
}

// image reads the user and the exposed ports of deploy/Dockerfile.
func image(t *testing.T) (user string, exposed []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "USER":
			user = f[1]
		case "EXPOSE":
			exposed = append(exposed, f[1:]...)
		}
	}
	return user, exposed
}

// envOf returns a container's env as name -> value and the names in order.
func envOf(c *Container) (map[string]string, []string) {
	m := map[string]string{}
	var order []string
	for _, e := range c.Env {
		m[e.Name] = e.Value
		order = append(order, e.Name)
	}
	return m, order
}

func durationOr(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	return time.ParseDuration(s)
}

func TestKubernetesManifests(t *testing.T) {
	o := loadK8s(t)
	settings := knownSettings(t)
	imgUser, exposed := image(t)
	if len(o.statefulSets) != 1 {
		t.Fatalf("want one StatefulSet, have %d", len(o.statefulSets))
	}
	ss := o.statefulSets[0]
	pod := &ss.Spec.Template.Spec
	podLabels := ss.Spec.Template.Metadata.Labels
	if !matches(ss.Spec.Selector.MatchLabels, podLabels) {
		t.Errorf("StatefulSet selector %v does not match its pod labels %v", ss.Spec.Selector.MatchLabels, podLabels)
	}
	if ss.Spec.Replicas < 3 {
		t.Errorf("replicas %d: a cluster that survives one loss needs 3", ss.Spec.Replicas)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, have %d", len(pod.Containers))
	}
	c := &pod.Containers[0]
	env, order := envOf(c)

	t.Run("ports", func(t *testing.T) {
		for _, e := range exposed {
			num, proto, _ := strings.Cut(e, "/")
			proto = strings.ToUpper(protoOr(proto))
			found := false
			for _, p := range c.Ports {
				if strconv.Itoa(p.ContainerPort) == num && protoOr(p.Protocol) == proto {
					found = true
				}
			}
			if !found {
				t.Errorf("the image exposes %s but the container declares no such port", e)
			}
		}
		names := map[string]bool{}
		for _, p := range c.Ports {
			if p.Name == "" || len(p.Name) > 15 || names[p.Name] {
				t.Errorf("container port %d: name %q must be unique, non-empty, at most 15 characters", p.ContainerPort, p.Name)
			}
			names[p.Name] = true
		}
		if env["PRESENCE_HTTP_ADDR"] != "" && !strings.HasSuffix(env["PRESENCE_HTTP_ADDR"], ":8000") {
			t.Errorf("PRESENCE_HTTP_ADDR %q does not listen on the http port", env["PRESENCE_HTTP_ADDR"])
		}
	})

	t.Run("services", func(t *testing.T) {
		var headless, client *Service
		for _, s := range o.services {
			if !matches(s.Spec.Selector, podLabels) {
				t.Errorf("Service %s: selector %v selects no pod of the StatefulSet (labels %v)", s.Metadata.Name, s.Spec.Selector, podLabels)
				continue
			}
			for _, p := range s.Spec.Ports {
				tp := p.TargetPort
				if tp.Kind == 0 {
					tp = yaml.Node{Kind: yaml.ScalarNode, Value: strconv.Itoa(p.Port)}
				}
				num, proto, ok := portRef(tp, c)
				if !ok {
					t.Errorf("Service %s port %s: targetPort %q is no container port", s.Metadata.Name, p.Name, tp.Value)
				} else if proto != protoOr(p.Protocol) {
					t.Errorf("Service %s port %s: protocol %s, the container port %d is %s", s.Metadata.Name, p.Name, protoOr(p.Protocol), num, proto)
				}
			}
			if s.Spec.ClusterIP == "None" {
				headless = s
			} else {
				client = s
			}
		}
		if headless == nil || client == nil {
			t.Fatalf("want a headless Service (gossip seeds) and a client Service")
		}
		if !headless.Spec.PublishNotReadyAddresses {
			t.Errorf("headless Service %s: publishNotReadyAddresses must be true (a starting pod must find the others before it is ready)", headless.Metadata.Name)
		}
		if ss.Spec.ServiceName != headless.Metadata.Name {
			t.Errorf("StatefulSet serviceName %q, want the headless Service %q", ss.Spec.ServiceName, headless.Metadata.Name)
		}
		seeds := env["PRESENCE_SEEDS"]
		if !strings.Contains(seeds, headless.Metadata.Name) {
			t.Errorf("PRESENCE_SEEDS %q does not name the headless Service %q", seeds, headless.Metadata.Name)
		}
		for _, seed := range strings.Split(seeds, ",") {
			_, port, err := splitSeed(seed)
			if err != nil || port != portNum(c, "gossip") {
				t.Errorf("seed %q: want host:%d (the gossip port)", seed, portNum(c, "gossip"))
			}
		}
		for _, p := range client.Spec.Ports {
			if n, _, _ := portRef(p.TargetPort, c); n != portNum(c, "http") {
				t.Errorf("client Service %s exposes container port %d, want only http", client.Metadata.Name, n)
			}
		}
	})

	t.Run("probes", func(t *testing.T) {
		for name, pr := range map[string]*Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
			if pr == nil || pr.HTTPGet == nil {
				t.Errorf("%s probe: want an httpGet probe", name)
				continue
			}
			if _, _, ok := portRef(pr.HTTPGet.Port, c); !ok {
				t.Errorf("%s probe: port %q is no container port", name, pr.HTTPGet.Port.Value)
			}
			if pr.TimeoutSeconds > 0 && pr.PeriodSeconds > 0 && pr.TimeoutSeconds >= pr.PeriodSeconds {
				t.Errorf("%s probe: timeout %ds not below period %ds", name, pr.TimeoutSeconds, pr.PeriodSeconds)
			}
		}
		if c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil && c.ReadinessProbe.HTTPGet.Path != "/readyz" {
			t.Errorf("readiness probe path %q, want /readyz", c.ReadinessProbe.HTTPGet.Path)
		}
		if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("liveness probe path %q, want /healthz (liveness must not fail while only the database is down)", c.LivenessProbe.HTTPGet.Path)
		}
	})

	t.Run("env", func(t *testing.T) {
		defined := map[string]bool{}
		for _, e := range c.Env {
			if strings.HasPrefix(e.Name, "PRESENCE_") && !settings[e.Name] {
				t.Errorf("env %s: presenced has no such setting (see cmd/presenced/config.go)", e.Name)
			}
			for _, ref := range regexp.MustCompile(`\$\(([A-Za-z0-9_]+)\)`).FindAllStringSubmatch(e.Value, -1) {
				if !defined[ref[1]] {
					t.Errorf("env %s refers to $(%s), which is not defined before it (Kubernetes expands only earlier variables)", e.Name, ref[1])
				}
			}
			defined[e.Name] = true
			if e.ValueFrom != nil && e.Value != "" {
				t.Errorf("env %s has both value and valueFrom", e.Name)
			}
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				ref := e.ValueFrom.SecretKeyRef
				found := false
				for _, s := range o.secrets {
					if s.Metadata.Name == ref.Name {
						_, a := s.StringData[ref.Key]
						_, b := s.Data[ref.Key]
						if !a && !b {
							t.Errorf("env %s: Secret %s has no key %q", e.Name, ref.Name, ref.Key)
						}
						found = true
					}
				}
				if !found {
					t.Errorf("env %s: no Secret named %q among the manifests", e.Name, ref.Name)
				}
			}
		}
		fieldRef := func(name string) string {
			for _, e := range c.Env {
				if e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
					return e.ValueFrom.FieldRef.FieldPath
				}
			}
			return ""
		}
		if got := fieldRef("PRESENCE_NODE_NAME"); got != "metadata.name" {
			t.Errorf("PRESENCE_NODE_NAME from fieldRef %q, want metadata.name", got)
		}
		if got := fieldRef("POD_IP"); got != "status.podIP" {
			t.Errorf("POD_IP from fieldRef %q, want status.podIP", got)
		}
		for name, port := range map[string]string{"PRESENCE_GOSSIP_ADVERTISE": "gossip", "PRESENCE_REMOTE_ADVERTISE": "remote"} {
			want := fmt.Sprintf("$(POD_IP):%d", portNum(c, port))
			if env[name] != want {
				t.Errorf("%s = %q, want %q", name, env[name], want)
			}
		}
		// Cluster ports named, on the pod's interfaces: unnamed, they
		// would stay on loopback.
		for name, port := range map[string]string{"PRESENCE_GOSSIP_ADDR": "gossip", "PRESENCE_REMOTE_ADDR": "remote"} {
			if want := fmt.Sprintf(":%d", portNum(c, port)); env[name] != want {
				t.Errorf("%s = %q, want %q", name, env[name], want)
			}
		}
		for _, secret := range []string{"PRESENCE_STORE", "PRESENCE_JWT_SECRET", "PRESENCE_GOSSIP_KEY"} {
			if !slices.Contains(order, secret) {
				t.Errorf("%s is not set", secret)
			} else if env[secret] != "" {
				t.Errorf("%s is a literal value; it must come from a Secret", secret)
			}
		}
		for _, vm := range c.VolumeMounts {
			if vm.MountPath == env["PRESENCE_DATA_DIR"] {
				return
			}
		}
		if pod.Containers[0].SecurityContext != nil && pod.Containers[0].SecurityContext.ReadOnlyRootFilesystem != nil && *pod.Containers[0].SecurityContext.ReadOnlyRootFilesystem {
			t.Errorf("read-only root filesystem but PRESENCE_DATA_DIR %q is no volume mount", env["PRESENCE_DATA_DIR"])
		}
	})

	t.Run("shutdown", func(t *testing.T) {
		drain, err := durationOr(env["PRESENCE_DRAIN_WAIT"], time.Second)
		if err != nil {
			t.Fatalf("PRESENCE_DRAIN_WAIT: %v", err)
		}
		shutdown, err := durationOr(env["PRESENCE_SHUTDOWN_TIMEOUT"], 20*time.Second)
		if err != nil {
			t.Fatalf("PRESENCE_SHUTDOWN_TIMEOUT: %v", err)
		}
		var preStop time.Duration
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
		grace := 30 * time.Second // the Kubernetes default
		if pod.TerminationGracePeriodSeconds != nil {
			grace = time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
		}
		if need := preStop + drain + shutdown; grace < need {
			t.Errorf("terminationGracePeriodSeconds %v < preStop %v + drain %v + shutdown timeout %v = %v: the kubelet would SIGKILL a draining node",
				grace, preStop, drain, shutdown, need)
		}
		if preStop == 0 && drain < 5*time.Second {
			t.Errorf("no preStop delay and PRESENCE_DRAIN_WAIT %v: endpoints may still send new connections to a node that stopped accepting", drain)
		}
	})

	t.Run("pdb-and-policy", func(t *testing.T) {
		if len(o.pdbs) == 0 {
			t.Error("no PodDisruptionBudget")
		}
		for _, p := range o.pdbs {
			if !matches(p.Spec.Selector.MatchLabels, podLabels) {
				t.Errorf("PDB %s: selector %v matches no pod", p.Metadata.Name, p.Spec.Selector.MatchLabels)
			}
			if (p.Spec.MaxUnavailable.Kind == 0) == (p.Spec.MinAvailable.Kind == 0) {
				t.Errorf("PDB %s: set exactly one of maxUnavailable and minAvailable", p.Metadata.Name)
			}
		}
		for _, np := range o.netpols {
			if !matches(np.Spec.PodSelector.MatchLabels, podLabels) {
				t.Errorf("NetworkPolicy %s: podSelector matches no pod", np.Metadata.Name)
			}
			covered := map[int]bool{}
			for _, in := range np.Spec.Ingress {
				for _, p := range in.Ports {
					n, proto, ok := portRef(p.Port, c)
					if !ok {
						t.Errorf("NetworkPolicy %s: port %q is no container port", np.Metadata.Name, p.Port.Value)
					} else if proto != protoOr(p.Protocol) {
						t.Errorf("NetworkPolicy %s: port %q protocol %s, container says %s", np.Metadata.Name, p.Port.Value, protoOr(p.Protocol), proto)
					}
					covered[n] = true
				}
				if len(in.From) > 0 {
					for _, f := range in.From {
						if f.PodSelector != nil && !matches(f.PodSelector.MatchLabels, podLabels) {
							t.Errorf("NetworkPolicy %s: from.podSelector %v matches no presence pod", np.Metadata.Name, f.PodSelector.MatchLabels)
						}
					}
				}
			}
			for _, p := range c.Ports {
				if !covered[p.ContainerPort] {
					t.Errorf("NetworkPolicy %s: container port %s (%d) is not allowed by any rule", np.Metadata.Name, p.Name, p.ContainerPort)
				}
			}
		}
	})

	t.Run("resources-and-security", func(t *testing.T) {
		for _, r := range []string{"cpu", "memory"} {
			if c.Resources.Requests[r] == "" {
				t.Errorf("no %s request", r)
			}
		}
		if c.Resources.Limits["memory"] == "" {
			t.Error("no memory limit")
		}
		sc := pod.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Error("pod securityContext.runAsNonRoot must be true")
		}
		if sc != nil && sc.RunAsUser != nil {
			if uid, _, _ := strings.Cut(imgUser, ":"); uid != strconv.Itoa(*sc.RunAsUser) {
				t.Errorf("runAsUser %d, the image's USER is %q", *sc.RunAsUser, imgUser)
			}
		}
		if csc := c.SecurityContext; csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
			t.Error("container securityContext.allowPrivilegeEscalation must be false")
		}
	})

	t.Run("kustomization", func(t *testing.T) {
		k := o.kustomize
		if k == nil {
			t.Fatal("no kustomization.yaml")
		}
		for _, r := range k.Resources {
			if _, ok := o.files[r]; !ok {
				t.Errorf("kustomization lists %s, which holds no object here", r)
			}
		}
		for f := range o.files {
			if strings.Contains(f, "example") {
				if slices.Contains(k.Resources, f) {
					t.Errorf("kustomization applies %s, whose values are placeholders", f)
				}
				continue
			}
			if !slices.Contains(k.Resources, f) {
				t.Errorf("%s is not listed in kustomization.yaml", f)
			}
		}
		kubectl, err := exec.LookPath("kubectl")
		if err != nil {
			t.Log("kubectl not installed: kustomize rendering not checked")
			return
		}
		out, err := exec.Command(kubectl, "kustomize", k8sDir).CombinedOutput()
		if err != nil {
			t.Errorf("kubectl kustomize: %v\n%s", err, out)
		}
	})
}

func splitSeed(s string) (string, int, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return s, 0, fmt.Errorf("no port")
	}
	p, err := strconv.Atoi(s[i+1:])
	return s[:i], p, err
}

func portNum(c *Container, name string) int {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return -1
}
