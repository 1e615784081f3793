package actors

import "github.com/presence-cluster/presence/messages"

// ChangeFeed receives every visible change of the users this node owns
// (the change feed for backends, webhook.Feed). Both methods are called
// from the user's actor, in the order of its changes, and must only
// enqueue: never block, never modify st.
type ChangeFeed interface {
	// Changed is a visible change, exactly what is pushed to watchers.
	Changed(st *messages.UserState)
	// Activated is the stored state of a user just activated here, which a
	// previous owner may have failed to deliver.
	Activated(st *messages.UserState)
}
