package runnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/runnel-dev/runnel/internal/gen/runnel/v1/runnelv1connect"
	"github.com/runnel-dev/runnel/internal/redact"
)

// Environment variables read by [NewClient].
const (
	// EnvHost names the engine's base URL, e.g. "http://127.0.0.1:7077".
	EnvHost = "RUNNEL_HOST"
	// EnvToken names the API token sent with every call.
	EnvToken = "RUNNEL_TOKEN"
	// DefaultHost is the engine's address when neither [WithHost] nor
	// RUNNEL_HOST says otherwise.
	DefaultHost = "http://127.0.0.1:7077"
)

const (
	// maxSendBytes bounds one request message: a PutStream batch holds up to
	// 8 MiB of payloads (or one 4 MiB payload), plus framing.
	maxSendBytes = 16 << 20
	// maxReadBytes bounds one response message: a Subscribe batch can carry
	// several 4 MiB payloads, and GetRun returns every step output.
	maxReadBytes = 64 << 20
)

// Client talks to a Runnel engine. It is safe for concurrent use; create one
// per process and share it.
type Client struct {
	host   string
	token  string
	renews bool // tokens come from a WithTokenFunc, so an expired one is replaced
	logger *slog.Logger
	// http and auth make the plain HTTP calls of durable streams.
	http *http.Client
	auth bearerAuth
	// streamTypes caches durable streams' content types (name → string).
	streamTypes sync.Map

	worker runnelv1connect.WorkerServiceClient
	run    runnelv1connect.RunServiceClient
}

// ClientOption configures a [Client]. Options override the environment.
type ClientOption interface {
	applyToClient(*clientConfig)
}

type clientConfig struct {
	host       string
	hostSet    bool
	token      string
	tokenSet   bool
	tokenFunc  func(context.Context) (string, error)
	httpClient *http.Client
	logger     *slog.Logger
}

type clientOptionFunc func(*clientConfig)

func (f clientOptionFunc) applyToClient(c *clientConfig) { f(c) }

// WithHost sets the engine's base URL ("http://host:port" or
// "https://host:port"), overriding RUNNEL_HOST. Several URLs separated by
// commas name engine nodes sharing one database: calls go to the first and
// move to the next when a node cannot be reached. A host without a scheme is
// taken as http://.
func WithHost(url string) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.host, c.hostSet = url, true })
}

// WithToken sets the API token sent as "Authorization: Bearer <token>" with
// every call, overriding RUNNEL_TOKEN.
func WithToken(token string) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.token, c.tokenSet = token, true })
}

// WithTokenFunc sets a function that returns the token to send, called
// before every call (cache inside it as you see fit); it overrides
// [WithToken] and RUNNEL_TOKEN. Use it with tokens that expire, such as a
// read-only browser token used from Go: the engine ends a subscription
// when its token expires (connect.CodeUnauthenticated, "token expired"),
// and with a token function the subscription resumes from its last
// position with a fresh token instead of failing.
func WithTokenFunc(fn func(context.Context) (string, error)) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.tokenFunc = fn })
}

// WithHTTPClient sets the HTTP client used for every call. Streaming calls
// (worker sessions, subscriptions) are long-lived, so the client must not
// have an overall Timeout. The default client speaks HTTP/2 without TLS
// (prior knowledge) to http:// hosts and HTTP/2 or HTTP/1.1 to https://
// hosts, and pings idle connections so that a dead engine is noticed.
func WithHTTPClient(client *http.Client) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.httpClient = client })
}

// WithLogger sets the logger for the client and the workers it creates
// (reconnects, dropped reports). The default is [slog.Default].
func WithLogger(logger *slog.Logger) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.logger = logger })
}

// NewClient returns a client for the engine at RUNNEL_HOST (default
// http://127.0.0.1:7077) that authenticates with RUNNEL_TOKEN; options
// override both. It does not connect: the first call does.
//
// It returns an error if the host is not a valid http:// or https:// URL.
func NewClient(opts ...ClientOption) (*Client, error) {
	var cfg clientConfig
	for _, opt := range opts {
		opt.applyToClient(&cfg)
	}
	if !cfg.hostSet {
		cfg.host = os.Getenv(EnvHost)
	}
	if cfg.host == "" {
		cfg.host = DefaultHost
	}
	if !cfg.tokenSet {
		cfg.token = os.Getenv(EnvToken)
	}
	hosts, err := parseHosts(cfg.host)
	if err != nil {
		return nil, fmt.Errorf("runnel: new client: %w", err)
	}
	host := hosts[0]
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	httpClient := cfg.httpClient
	if httpClient == nil {
		httpClient = defaultHTTPClient(host)
	}
	if len(hosts) > 1 {
		base := httpClient.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		f, err := newFailover(base, hosts)
		if err != nil {
			return nil, fmt.Errorf("runnel: new client: %w", err)
		}
		withFailover := *httpClient
		withFailover.Transport = f
		httpClient = &withFailover
	}
	auth := bearerAuth{token: cfg.token, tokenFunc: cfg.tokenFunc}
	connectOpts := []connect.ClientOption{
		connect.WithInterceptors(auth),
		connect.WithSendMaxBytes(maxSendBytes),
		connect.WithReadMaxBytes(maxReadBytes),
	}
	return &Client{
		host:   host,
		token:  cfg.token,
		renews: cfg.tokenFunc != nil,
		logger: cfg.logger,
		http:   httpClient,
		auth:   auth,
		worker: runnelv1connect.NewWorkerServiceClient(httpClient, host, connectOpts...),
		run:    runnelv1connect.NewRunServiceClient(httpClient, host, connectOpts...),
	}, nil
}

// Host returns the engine's base URL the client calls.
func (c *Client) Host() string { return c.host }

// Admin returns the client's run administration API.
func (c *Client) Admin() *Admin { return &Admin{c: c} }

// Listener returns the client's run subscription API (every event).
func (c *Client) Listener() *Listener { return &Listener{c: c} }

// Subscribe returns the client's stream subscription API (only the data
// steps put on the stream).
func (c *Client) Subscribe() *Subscriber { return &Subscriber{l: c.Listener()} }

// parseHost validates and normalises an engine base URL.
func parseHost(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	shown := redact.Secrets(raw) // errors never repeat a password
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the whole URL
		}
		return "", fmt.Errorf("invalid host %q: %w", shown, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("invalid host %q: scheme must be http or https", shown)
	}
	if u.Host == "" {
		return "", fmt.Errorf("invalid host %q: no host name", shown)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("invalid host %q: must not have a query or fragment", shown)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// defaultHTTPClient returns a client that speaks HTTP/2 to the engine. For
// http:// hosts that is unencrypted HTTP/2 with prior knowledge (h2c): the
// transport only does so when HTTP/1 is not in its protocol set, so HTTP/1 is
// left out. HTTP/2 multiplexes a worker's Listen stream, heartbeats and
// stream puts on one connection, and pings detect a dead connection that
// would otherwise leave a Listen or Subscribe stream hanging.
func defaultHTTPClient(host string) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Protocols = new(http.Protocols)
	if strings.HasPrefix(host, "http://") {
		t.Protocols.SetUnencryptedHTTP2(true)
	} else {
		t.Protocols.SetHTTP1(true)
		t.Protocols.SetHTTP2(true)
	}
	t.HTTP2 = &http.HTTP2Config{
		SendPingTimeout: 15 * time.Second,
		PingTimeout:     10 * time.Second,
	}
	return &http.Client{Transport: t}
}

// bearerAuth adds the API token to every call, unary and streaming: the
// fixed one, or the token function's.
type bearerAuth struct {
	token     string
	tokenFunc func(context.Context) (string, error)
}

func (a bearerAuth) get(ctx context.Context) (string, error) {
	if a.tokenFunc == nil {
		return a.token, nil
	}
	tok, err := a.tokenFunc(ctx)
	if err != nil {
		return "", fmt.Errorf("runnel: get a token: %w", err)
	}
	return tok, nil
}

func (a bearerAuth) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			tok, err := a.get(ctx)
			if err != nil {
				return nil, err
			}
			if tok != "" {
				req.Header().Set("Authorization", "Bearer "+tok)
			}
		}
		return next(ctx, req)
	}
}

func (a bearerAuth) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		// A token function that fails leaves the call without a token: the
		// engine refuses it as unauthenticated, which ends a subscription.
		if tok, _ := a.get(ctx); tok != "" {
			conn.RequestHeader().Set("Authorization", "Bearer "+tok)
		}
		return conn
	}
}

func (a bearerAuth) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// isTransient reports whether a failed call may succeed if made again: the
// engine was unreachable or restarting, or the connection broke. Internal,
// Unknown and Canceled errors count only when they did not come from the
// engine (a broken connection or a stream reset by an engine going away
// yields them client-side; callers check their own context first); an
// engine that says Internal has made up its mind.
func isTransient(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeAborted:
		return true
	case connect.CodeInternal, connect.CodeUnknown, connect.CodeCanceled:
		return !connect.IsWireError(err)
	}
	return false
}

// isStale reports whether the engine refused a call about a step attempt
// because that attempt is no longer current (cancelled, timed out, or
// re-queued as a new attempt).
func isStale(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeFailedPrecondition, connect.CodeNotFound:
		return true
	}
	return false
}
