package api

import (
	"fmt"
	"net/http"

	"connectrpc.com/connect"

	"github.com/runnel-dev/runnel/internal/gen/runnel/v1/runnelv1connect"
)

// RPC request size limits. Each procedure reads at most what its largest
// legitimate request needs, in either codec: the Go SDK sends protobuf, but
// Connect also accepts JSON, where bytes fields are base64 (4/3 larger)
// and strings may be escaped. A body over its procedure's limit is refused
// with ResourceExhausted before it is decoded; the limit applies to the
// message after decompression, so a small gzip body cannot expand past it.
const (
	// rpcSmallLimit covers requests made of ids, names and filters.
	rpcSmallLimit = 64 << 10
	// rpcRegisterLimit covers a worker's workflow definitions.
	rpcRegisterLimit = 1 << 20
	// rpcInputLimit covers a 4 MiB run input, event payload or step output
	// (5.4 MiB as base64 in JSON) plus 64 metadata pairs.
	rpcInputLimit = 6 << 20
	// rpcPutStreamLimit covers one PutStream batch: the Go SDK sends at
	// most 8 MiB of payloads per request (each at most 4 MiB), 10.7 MiB as
	// base64 in JSON.
	rpcPutStreamLimit = 12 << 20
	// MaxRPCMessageSize is the largest limit of any procedure.
	MaxRPCMessageSize = rpcPutStreamLimit
)

// rpcReadLimits is the read limit of every procedure; a test checks that
// every procedure of the services has one.
var rpcReadLimits = map[string]int64{
	runnelv1connect.WorkerServiceRegisterWorkerProcedure:   rpcRegisterLimit,
	runnelv1connect.WorkerServiceListenProcedure:           rpcSmallLimit,
	runnelv1connect.WorkerServiceHeartbeatProcedure:        rpcSmallLimit,
	runnelv1connect.WorkerServiceDeregisterWorkerProcedure: rpcSmallLimit,
	runnelv1connect.WorkerServicePutStreamProcedure:        rpcPutStreamLimit,
	runnelv1connect.WorkerServiceCompleteStepProcedure:     rpcInputLimit,
	// A step's error message is kept up to 64 KiB; the SDK may send more,
	// which the engine truncates.
	runnelv1connect.WorkerServiceFailStepProcedure:       rpcRegisterLimit,
	runnelv1connect.WorkerServiceSpawnRunProcedure:       rpcInputLimit,
	runnelv1connect.RunServiceTriggerRunProcedure:        rpcInputLimit,
	runnelv1connect.RunServiceGetRunProcedure:            rpcSmallLimit,
	runnelv1connect.RunServiceListRunsProcedure:          rpcSmallLimit,
	runnelv1connect.RunServiceCancelRunProcedure:         rpcSmallLimit,
	runnelv1connect.RunServiceListWorkflowsProcedure:     rpcSmallLimit,
	runnelv1connect.RunServiceSubscribeProcedure:         rpcSmallLimit,
	runnelv1connect.RunServiceCreateTokenProcedure:       rpcSmallLimit,
	runnelv1connect.RunServiceSubscribeMetadataProcedure: rpcSmallLimit,
	runnelv1connect.RunServicePushEventProcedure:         rpcInputLimit,
	runnelv1connect.RunServiceListTokensProcedure:        rpcSmallLimit,
	runnelv1connect.RunServiceRevokeTokenProcedure:       rpcSmallLimit,
}

// RPCReadLimit returns the request size limit of a procedure (its full
// path, e.g. /runnel.v1.RunService/TriggerRun), and false for an unknown
// one.
func RPCReadLimit(procedure string) (int64, bool) {
	n, ok := rpcReadLimits[procedure]
	return n, ok
}

// rpcAuthenticated authenticates a Connect request from its headers alone,
// before anything reads its body: a request without a valid token costs
// the engine a token lookup, not the decoding of up to MaxRPCMessageSize
// bytes. The refusal is written in the request's protocol (Connect, gRPC
// or gRPC-Web), so clients see CodeUnauthenticated as from the handler.
// The body is never read here; net/http drains at most 256 KiB of it to
// keep an HTTP/1.1 connection open, and closes the connection otherwise.
func (r *RPC) rpcAuthenticated(next http.Handler) http.Handler {
	errs := connect.NewErrorWriter()
	auth := &authInterceptor{engine: r.engine, log: r.log}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ctx, err := auth.authenticate(req.Context(), req.Header)
		if err != nil {
			if werr := errs.Write(w, req, auth.toConnect(req.URL.Path, err)); werr != nil {
				r.log.Debug("write rpc refusal", "path", req.URL.Path, "err", werr)
			}
			return
		}
		next.ServeHTTP(w, req.WithContext(ctx))
	})
}

// procedureHandler returns the handler of one procedure with its read
// limit.
func (r *RPC) procedureHandler(procedure string, limit int64, opts []connect.HandlerOption) http.Handler {
	opts = append(opts[:len(opts):len(opts)], connect.WithReadMaxBytes(int(limit)))
	var h http.Handler
	switch {
	case isProcedureOf(procedure, runnelv1connect.WorkerServiceName):
		_, h = runnelv1connect.NewWorkerServiceHandler(&workerService{engine: r.engine}, opts...)
	case isProcedureOf(procedure, runnelv1connect.RunServiceName):
		_, h = runnelv1connect.NewRunServiceHandler(&runService{engine: r.engine}, opts...)
	default:
		panic(fmt.Sprintf("api: procedure %s of no known service", procedure))
	}
	return h
}

func isProcedureOf(procedure, service string) bool {
	return len(procedure) > len(service)+2 && procedure[1:len(service)+1] == service && procedure[len(service)+1] == '/'
}
