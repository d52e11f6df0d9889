// Package api serves the engine over the network: the Connect RPC services
// used by the Go SDK and workers (this file), and the auth and error mapping
// shared by every edge.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/gen/runnel/v1/runnelv1connect"
)

// RPC serves the Connect services.
type RPC struct {
	engine *engine.Engine
	log    *slog.Logger
}

// NewRPC returns the RPC services over e.
func NewRPC(e *engine.Engine, log *slog.Logger) *RPC {
	return &RPC{engine: e, log: log}
}

// Mount registers the services on mux: every procedure on its own path,
// with its own read limit (see rpcReadLimits), behind authentication that
// reads no body. The services' prefixes answer unknown procedures (Connect's
// 404) with the smallest limit.
func (r *RPC) Mount(mux *http.ServeMux) {
	opts := []connect.HandlerOption{
		connect.WithInterceptors(&authInterceptor{engine: r.engine, log: r.log}),
		// After authentication: strings the store cannot keep are refused.
		connect.WithInterceptors(textCheck{}),
		// gzip costs more CPU than it saves between an engine and its
		// workers and clients, which sit on one network: a subscription
		// spent a quarter of its time compressing. Only large responses
		// (long run lists) are still compressed for clients that accept it.
		connect.WithCompressMinBytes(compressMinBytes),
	}
	for procedure, limit := range rpcReadLimits {
		mux.Handle(procedure, r.rpcAuthenticated(r.procedureHandler(procedure, limit, opts)))
	}
	for _, service := range []string{runnelv1connect.WorkerServiceName, runnelv1connect.RunServiceName} {
		prefix := "/" + service + "/"
		mux.Handle(prefix, r.rpcAuthenticated(r.procedureHandler(prefix+"unknown", rpcSmallLimit, opts)))
	}
}

// compressMinBytes is the smallest response the engine compresses.
const compressMinBytes = 1 << 20

type principalKey struct{}

// PrincipalFrom returns the authenticated principal of a request.
func PrincipalFrom(ctx context.Context) (engine.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(engine.Principal)
	return p, ok
}

func mustPrincipal(ctx context.Context) engine.Principal {
	p, ok := PrincipalFrom(ctx)
	if !ok {
		panic("api: handler reached without authentication")
	}
	return p
}

// BearerToken extracts the token of a request: the Authorization header, or
// the token query parameter (EventSource cannot set headers). The scheme is
// case-insensitive (RFC 7235), so "bearer TOKEN" works too.
func BearerToken(h http.Header, query func(string) string) string {
	if auth := h.Get("Authorization"); auth != "" {
		if scheme, tok, ok := strings.Cut(auth, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	if query != nil {
		return query("token")
	}
	return ""
}

// authInterceptor authenticates every call and maps errors to Connect codes.
type authInterceptor struct {
	engine *engine.Engine
	log    *slog.Logger
}

// authenticate puts the principal of the request's token in ctx, unless
// rpcAuthenticated already did.
func (a *authInterceptor) authenticate(ctx context.Context, h http.Header) (context.Context, error) {
	if _, ok := PrincipalFrom(ctx); ok {
		return ctx, nil
	}
	p, err := a.engine.Authenticate(ctx, BearerToken(h, nil))
	if err != nil {
		return ctx, err
	}
	return context.WithValue(ctx, principalKey{}, p), nil
}

func (a *authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		ctx, err := a.authenticate(ctx, req.Header())
		if err != nil {
			return nil, a.toConnect(req.Spec().Procedure, err)
		}
		resp, err := next(ctx, req)
		if err != nil {
			return nil, a.toConnect(req.Spec().Procedure, err)
		}
		return resp, nil
	}
}

func (a *authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (a *authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := a.authenticate(ctx, conn.RequestHeader())
		if err != nil {
			return a.toConnect(conn.Spec().Procedure, err)
		}
		// A stream (a subscription, a worker's Listen) lasts no longer
		// than its token: expiry is not only checked when it opens.
		p := mustPrincipal(ctx)
		if !p.ExpiresAt.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadlineCause(ctx, p.ExpiresAt, errTokenExpired)
			defer cancel()
		}
		if err := next(ctx, conn); err != nil {
			if errors.Is(context.Cause(ctx), errTokenExpired) {
				err = engine.TokenExpired(p.ExpiresAt)
			}
			return a.toConnect(conn.Spec().Procedure, err)
		}
		return nil
	}
}

// errTokenExpired ends a stream's context at its token's expiry.
var errTokenExpired = errors.New("token expired")

// toConnect maps an engine error to a Connect error once, at the edge.
// Uncoded errors are internal: logged in full, shown as a generic message.
func (a *authInterceptor) toConnect(procedure string, err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return connect.NewError(connect.CodeCanceled, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	}
	err = codeStoreErr(err)
	code := apierr.CodeOf(err)
	if code == apierr.Internal {
		a.log.Error("rpc failed", "procedure", procedure, "err", err)
	}
	ce = connect.NewError(ConnectCode(code), errors.New(apierr.Message(err)))
	if wait := apierr.RetryAfterOf(err); wait > 0 {
		ce.Meta().Set("Retry-After", retryAfterSeconds(wait))
	}
	return ce
}

// ConnectCode maps an engine error code to a Connect code.
func ConnectCode(c apierr.Code) connect.Code {
	switch c {
	case apierr.InvalidArgument:
		return connect.CodeInvalidArgument
	case apierr.NotFound:
		return connect.CodeNotFound
	case apierr.AlreadyExists:
		return connect.CodeAlreadyExists
	case apierr.FailedPrecondition:
		return connect.CodeFailedPrecondition
	case apierr.Unauthenticated:
		return connect.CodeUnauthenticated
	case apierr.PermissionDenied:
		return connect.CodePermissionDenied
	case apierr.ResourceExhausted:
		return connect.CodeResourceExhausted
	case apierr.Unavailable:
		return connect.CodeUnavailable
	}
	return connect.CodeInternal
}

// requireWriter refuses read-only (browser) tokens.
func requireWriter(p engine.Principal) error {
	if !p.CanWrite() {
		return apierr.New(apierr.PermissionDenied, "this token is read-only")
	}
	return nil
}
