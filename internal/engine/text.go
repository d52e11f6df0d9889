package engine

// truncateText shortens client text repeated in an error message.
func truncateText(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
