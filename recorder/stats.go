package recorder

// ManagerStats describe what a Manager records now.
type ManagerStats struct {
	Rooms  int // rooms with a recording session (whole or some participants)
	Active int // participants being recorded, over all rooms
	// Dropped counts the packets every track recorder dropped so far (a
	// full queue: the disk or the recorder is too slow).
	Dropped uint64
}

// Stats returns what the manager records now. It only takes the manager's
// and the sessions' locks, briefly.
func (m *Manager) Stats() ManagerStats {
	m.mu.Lock()
	ss := make([]*roomSession, 0, len(m.sessions))
	for _, s := range m.sessions {
		ss = append(ss, s)
	}
	m.mu.Unlock()
	st := ManagerStats{Dropped: m.drops.Load()}
	for _, s := range ss {
		if s.isEnded() {
			continue // finishing its files
		}
		st.Rooms++
		s.mu.Lock()
		st.Active += len(s.who)
		s.mu.Unlock()
	}
	return st
}
