package api

import "testing"

func TestSDKOf(t *testing.T) {
	for _, tc := range []struct{ ua, sdk, version string }{
		{"connect-go/1.21.1 (go1.25.3)", "go", "go1.25.3"},
		{"runnel-python/0.1", "python", "0.1"},
		{"connect-es/2.0.2", "typescript", "2.0.2"},
		{"node", "typescript", ""},
		{"curl/8.5.0", "", ""},
		{"", "", ""},
	} {
		if sdk, version := sdkOf(tc.ua); sdk != tc.sdk || version != tc.version {
			t.Errorf("sdkOf(%q) = %q, %q; want %q, %q", tc.ua, sdk, version, tc.sdk, tc.version)
		}
	}
}
