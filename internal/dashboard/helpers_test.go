package dashboard_test

import "github.com/runnel-dev/runnel"

func withMeta(k, v string) runnel.RunOption {
	return runnel.WithAdditionalMetadata(map[string]string{k: v})
}
