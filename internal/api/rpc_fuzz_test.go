package api_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/internal/gen/runnel/v1/runnelv1connect"
	"github.com/runnel-dev/runnel/internal/testengine"
)

// rpcProcedures lists every Connect procedure the engine serves, with
// whether it is server-streaming (those take an enveloped request).
var rpcProcedures = []struct {
	path      string
	streaming bool
}{
	{runnelv1connect.WorkerServiceRegisterWorkerProcedure, false},
	{runnelv1connect.WorkerServiceListenProcedure, true},
	{runnelv1connect.WorkerServiceHeartbeatProcedure, false},
	{runnelv1connect.WorkerServicePutStreamProcedure, false},
	{runnelv1connect.WorkerServiceCompleteStepProcedure, false},
	{runnelv1connect.WorkerServiceFailStepProcedure, false},
	{runnelv1connect.WorkerServiceSpawnRunProcedure, false},
	{runnelv1connect.RunServiceTriggerRunProcedure, false},
	{runnelv1connect.RunServiceGetRunProcedure, false},
	{runnelv1connect.RunServiceListRunsProcedure, false},
	{runnelv1connect.RunServiceCancelRunProcedure, false},
	{runnelv1connect.RunServiceListWorkflowsProcedure, false},
	{runnelv1connect.RunServiceSubscribeProcedure, true},
	{runnelv1connect.RunServiceCreateTokenProcedure, false},
	{runnelv1connect.RunServiceSubscribeMetadataProcedure, true},
	{runnelv1connect.RunServicePushEventProcedure, false},
	{runnelv1connect.RunServiceListTokensProcedure, false},
	{runnelv1connect.RunServiceRevokeTokenProcedure, false},
}

// FuzzRPC sends arbitrary Connect-JSON bodies to every RPC method of a real
// engine with a valid admin token: whatever the body, the answer is a coded
// client error or a success, never an internal error, a panic or a hang
// past the request's deadline (streams aside, which may legitimately stay
// open: for them only the first message or the error counts).
func FuzzRPC(f *testing.F) {
	seeds := []string{
		`{}`, `null`, `[]`, `{"runId": "00000000-0000-0000-0000-000000000000"}`,
		`{"workflow": "demo-text", "input": "eyJjaHVua3MiOjF9"}`,
		`{"workflow": "demo-text", "additionalMetadata": {"\u0000": "x"}}`,
		`{"name": "w", "slots": 1, "workflows": [{"name": "x", "steps": [{"name": "a", "parents": ["a"]}]}]}`,
		`{"name": "w", "slots": 1, "previousWorkerId": "x", "running": [{"stepRunId": "s", "attempt": 1}]}`,
		`{"stepRunId": "x", "attempt": 2147483647, "firstSeq": "-1", "payloads": ["AA=="]}`,
		`{"metadata": {"k": "v"}, "limit": -5, "before": "zz"}`,
		`{"key": "k", "value": "", "after": "garbage"}`,
		`{"tenant": "\u202e", "name": "` + strings.Repeat("n", 300) + `"}`,
		`{"workerId": "\xff"}`,
	}
	for i := range rpcProcedures {
		for _, s := range seeds {
			f.Add(uint8(i), []byte(s))
		}
	}
	e := testengine.StartWithDemoWorker(f)
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		proc := rpcProcedures[int(which)%len(rpcProcedures)]
		code, msg, err := callRPC(e.URL, e.Token, proc.path, proc.streaming, body)
		if err != nil {
			t.Fatalf("%s %q: %v", proc.path, body, err)
		}
		if code == "internal" || code == "unknown" || code == "data_loss" {
			t.Fatalf("%s %q: %s: %s", proc.path, body, code, msg)
		}
	})
}

// callRPC sends one Connect-JSON request and returns the error code of the
// answer ("" on success or on a stream still open at the deadline).
func callRPC(baseURL, token, path string, streaming bool, body []byte) (code, msg string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	payload, contentType := body, "application/json"
	if streaming {
		var env bytes.Buffer
		env.WriteByte(0)
		_ = binary.Write(&env, binary.BigEndian, uint32(len(body)))
		env.Write(body)
		payload, contentType = env.Bytes(), "application/connect+json"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+path, bytes.NewReader(payload))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return "", "", nil
		}
		return "", "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
		b, _ := io.ReadAll(resp.Body)
		return "internal", resp.Status + " " + string(b), nil
	}
	if !streaming {
		var e struct{ Code, Message string }
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			if jerr := json.Unmarshal(b, &e); jerr != nil {
				return "unknown", resp.Status + " " + string(b), nil
			}
		}
		return e.Code, e.Message, nil
	}
	// A server stream: read envelopes until the end-of-stream message (flag
	// 2), which carries the error if any, or until the deadline.
	var head [5]byte
	for {
		if _, err := io.ReadFull(resp.Body, head[:]); err != nil {
			return "", "", nil // deadline or closed: no coded error to judge
		}
		n := binary.BigEndian.Uint32(head[1:])
		if n > 64<<20 {
			return "unknown", "envelope too large", nil
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			return "", "", nil
		}
		if head[0]&2 == 0 {
			continue
		}
		var end struct {
			Error *struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(b, &end); err != nil {
			return "unknown", "end of stream: " + string(b), nil
		}
		if end.Error == nil {
			return "", "", nil
		}
		return end.Error.Code, end.Error.Message, nil
	}
}
