package testkit

// Node is what every kind of test node has: an in-process node (InProc)
// and a presenced process (Proc). Stopping differs by kind: InProc.Stop
// and cluster.Node.Kill; Proc.Term and Proc.Kill (kill -9); a ProcCluster
// restarts a node on its ports with Start.
type Node interface {
	// Name is the node name (PRESENCE_NODE_NAME).
	Name() string
	// Addr is the HTTP address, host:port.
	Addr() string
}

var (
	_ Node = (*InProc)(nil)
	_ Node = (*Proc)(nil)
)
