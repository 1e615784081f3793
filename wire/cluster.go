package wire

// MemberStatus is one member in GET /admin/cluster.
type MemberStatus struct {
	Name         string `json:"name"`
	NodeName     string `json:"node_name"`
	Status       string `json:"status"`
	Draining     bool   `json:"draining"`
	Owner        bool   `json:"owns_users"`
	Self         bool   `json:"self"`
	HTTPAddr     string `json:"http_addr"`
	GossipAddr   string `json:"gossip_addr"`
	RemoteAddr   string `json:"remote_addr"`
	ActorsHosted *int64 `json:"actors_hosted"`
	Error        string `json:"error,omitempty"`
}

// ClusterStatus is GET /admin/cluster: the membership as the node asked
// sees it.
type ClusterStatus struct {
	Node       string         `json:"node"`
	Standalone bool           `json:"standalone"`
	Epoch      uint64         `json:"epoch"`
	Members    []MemberStatus `json:"members"`
}
