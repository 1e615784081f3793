package ws

// reserve marks the ids new to the session as subscribed but not yet
// acknowledged: pushes for them are held until markReady. With limit > 0,
// it refuses (false, nothing marked) when the session would then watch
// more than limit users.
func (s *session) reserve(ids []int64, limit int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit > 0 {
		fresh := 0
		for _, id := range ids {
			if _, ok := s.subs[id]; !ok {
				fresh++
			}
		}
		if fresh+len(s.subs) > limit {
			return false
		}
	}
	for _, id := range ids {
		if _, ok := s.subs[id]; !ok {
			s.subs[id] = &subscription{}
		}
	}
	return true
}

// admitSnapshot records that the subscribe answer for id carries version v
// (0: no state). live is false when the session no longer watches id or is
// closing (nothing more to do for it); fresh is false when a newer state
// was pushed and sent meanwhile (the snapshot must not follow it); pending
// is true while pushes for id are held, until markReady.
func (s *session) admitSnapshot(id int64, v uint64) (live, fresh, pending bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.subs[id]
	if sub == nil || s.closing {
		return false, false, false
	}
	if sub.ready {
		fresh = v >= sub.version
		sub.version = max(sub.version, v)
		return true, fresh, false
	}
	return true, true, true
}

// markReady ends the hold on id's pushes after its snapshot (version v) was
// queued: a push that arrived meanwhile and is newer goes out now.
func (s *session) markReady(id int64, v uint64) {
	s.mu.Lock()
	sub := s.subs[id]
	if sub == nil || sub.ready {
		s.mu.Unlock()
		return
	}
	sub.ready = true
	sub.version = v
	var full bool
	if sub.pendVer > v && !s.closing {
		sub.version = sub.pendVer
		full = !s.enqueueLocked(sub.pending)
	}
	sub.pending, sub.pendVer = nil, 0
	s.mu.Unlock()
	if full {
		s.slowConsumer()
	}
}

// drop removes ids from the session's subscriptions and returns those it
// watched. The session's own user is kept: a session always receives its
// own user's changes (other devices).
func (s *session) drop(ids []int64) []int64 {
	own := s.user.UserID
	dropped := make([]int64, 0, len(ids))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if id == own {
			continue
		}
		if _, ok := s.subs[id]; ok {
			delete(s.subs, id)
			dropped = append(dropped, id)
		}
	}
	return dropped
}

// subscribedIDs lists the users the session watches.
func (s *session) subscribedIDs() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]int64, 0, len(s.subs))
	for id := range s.subs {
		ids = append(ids, id)
	}
	return ids
}
