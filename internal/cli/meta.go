package cli

import (
	"fmt"
	"strings"
)

// parseMeta parses repeated --meta k=v flags into a map. A key may not be
// empty or repeated; the value may be empty and may contain '='.
func parseMeta(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("invalid --meta %q: want key=value", p)
		}
		if k == "" {
			return nil, fmt.Errorf("invalid --meta %q: empty key", p)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("invalid --meta: key %q given twice", k)
		}
		out[k] = v
	}
	return out, nil
}
