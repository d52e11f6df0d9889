package runnel

import "testing"

func TestParseHosts(t *testing.T) {
	t.Parallel()
	got, err := parseHosts(" http://a:1, b:2 ,")
	if err != nil || len(got) != 2 || got[0] != "http://a:1" || got[1] != "http://b:2" {
		t.Fatalf("parseHosts = %v, %v", got, err)
	}
	for _, bad := range []string{"", ",", "http://a,https://b", "ftp://a"} {
		if _, err := parseHosts(bad); err == nil {
			t.Errorf("parseHosts(%q): no error", bad)
		}
	}
}
