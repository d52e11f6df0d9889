package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	pb "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
)

// rpcProcedures lists every procedure of both services, and whether its
// response is a stream.
func rpcProcedures() (paths []string, streaming []bool) {
	services := pb.File_runnel_v1_runnel_proto.Services()
	for i := range services.Len() {
		sd := services.Get(i)
		for j := range sd.Methods().Len() {
			m := sd.Methods().Get(j)
			paths = append(paths, "/"+string(sd.FullName())+"/"+string(m.Name()))
			streaming = append(streaming, m.IsStreamingServer())
		}
	}
	return paths, streaming
}

// FuzzRPC sends Connect JSON bodies to every procedure of a real node, with
// a valid admin token so that the bodies are decoded: whatever the body,
// the node answers a coded client error or success, never an internal
// error, a 5xx or a dropped connection (a panic).
func FuzzRPC(f *testing.F) {
	n := startNode(f, "sqlite")
	paths, streaming := rpcProcedures()
	for i := range paths {
		for _, body := range []string{
			`{}`, `null`, `[]`, `{"runId": "x"}`, `{"workflow": "demo-text", "input": "e30="}`,
			`{"key": "k", "value": "v"}`, `{"workerId": "\u0000"}`, `{"name": "w", "slots": -1, "workflows": [{"name": ""}]}`,
			`{"stepRunId": "s", "attempt": 1, "firstSeq": 0, "payloads": ["AA=="]}`, `{"limit": 100000}`, `{"additionalMetadata": {"": ""}}`,
			`{"name": "w", "slots": 1, "previousWorkerId": "x", "running": [{"stepRunId": "s", "attempt": 1}]}`,
			`{"tokenId": "x"}`, `{"tenant": "\u202e", "expiresInMs": "-1", "admin": true}`,
		} {
			f.Add(uint8(i), []byte(body))
		}
	}
	client := &http.Client{}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		i := int(which) % len(paths)
		// Streams that are accepted stay open (a metadata subscription
		// never ends): what they said within a moment is enough.
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		contentType, wire := "application/json", body
		if streaming[i] {
			contentType = "application/connect+json"
			wire = make([]byte, 5+len(body))
			binary.BigEndian.PutUint32(wire[1:5], uint32(len(body)))
			copy(wire[5:], body)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url+paths[i], bytes.NewReader(wire))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Authorization", "Bearer "+n.srv.AdminToken)
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			t.Fatalf("%s %q: %v", paths[i], body, err)
		}
		defer resp.Body.Close()
		answer, err := io.ReadAll(resp.Body)
		if err != nil && ctx.Err() == nil {
			t.Fatalf("%s %q: reading the answer: %v", paths[i], body, err)
		}
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %q: %s %s", paths[i], body, resp.Status, answer)
		}
		for _, code := range []string{`"code":"internal"`, `"code":"unknown"`} {
			if strings.Contains(string(answer), code) {
				t.Fatalf("%s %q: %s", paths[i], body, answer)
			}
		}
	})
}
