package sqlite

// PendingWrites is the number of writes waiting for the next batch.
func (s *Store) PendingWrites() int {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	return len(s.pending)
}
