package client

// versionFilter keeps the highest version seen per user and lets through
// only updates above it: a snapshot sent again after a reconnect, or a
// push overtaken by a newer one, changes nothing the caller knows.
// It is not safe for concurrent use.
type versionFilter map[int64]uint64

// accept reports whether version is news for user id, and records it.
func (f versionFilter) accept(id int64, version uint64) bool {
	if seen, ok := f[id]; ok && version <= seen {
		return false
	}
	f[id] = version
	return true
}

// forget drops what is known of id, so an unsubscribed user costs nothing;
// subscribing again delivers the user's state again.
func (f versionFilter) forget(id int64) { delete(f, id) }
