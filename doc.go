// Package runnel is the Go SDK of Runnel, a durable workflow engine that
// streams results from background workers to backends and browsers.
package runnel

//go:generate go tool buf generate
