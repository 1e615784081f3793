package main

// TODO(merge): decode into the shared GET /admin/cluster type (wire, or
// wherever cluster.ClusterStatus lands) and delete this file. It is a copy
// of cluster.ClusterStatus and cluster.MemberStatus so that presencectl
// does not link the server (cluster imports actors and api).

// clusterStatus is GET /admin/cluster: the membership as the node asked
// sees it.
type clusterStatus struct {
	Node       string         `json:"node"`
	Standalone bool           `json:"standalone"`
	Epoch      uint64         `json:"epoch"`
	Members    []memberStatus `json:"members"`
}

// memberStatus is one member in GET /admin/cluster.
type memberStatus struct {
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
