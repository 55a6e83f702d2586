package recorder

// ManagerStats describe what a Manager records now.
//
// Packet drops and bytes written are not here: each TrackRecorder counts
// its drops (TrackStats.PacketsDropped), but only the room session's
// goroutine holds the track recorders, and nothing counts the bytes written
// to files.
type ManagerStats struct {
	Rooms  int // rooms with a recording session (whole or some participants)
	Active int // participants being recorded, over all rooms
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
	var st ManagerStats
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
