//go:build race

package main_test

// raceEnabled is true when this test binary was built with -race: the
// runnel binary the tests start is then built with -race too (as in CI),
// and without it otherwise, so a plain `go test` does not pay for the
// race detector it did not ask for.
const raceEnabled = true
