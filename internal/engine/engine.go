// Package engine is Runnel's workflow engine: it stores workflow
// definitions and runs, assigns step runs to connected workers, applies
// results, retries, timeouts and cancellations, and writes every transition
// to the run event log in the same transaction as the state change.
//
// The state machine is written once against store.Tx. Lock order in every
// transaction: the run, then its step runs, then (last, via AppendEvents) the
// log. Step runs are never locked before their run, which keeps
// concurrent transactions on one run (claim, complete, cancel) deadlock-free
// on PostgreSQL.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/runnel-dev/runnel/internal/clock"
	"github.com/runnel-dev/runnel/internal/eventlog"
	"github.com/runnel-dev/runnel/internal/metrics"
	"github.com/runnel-dev/runnel/internal/startstop"
	"github.com/runnel-dev/runnel/internal/store"
)

// DefaultHeartbeatInterval is how often workers heartbeat unless
// configured; a worker silent for 5 intervals is declared dead.
const DefaultHeartbeatInterval = 2 * time.Second

// Config configures an engine. Zero values are the defaults.
type Config struct {
	// NodeID names this engine process among several sharing a database
	// (default: a new random id).
	NodeID string
	// HeartbeatInterval is how often workers are asked to heartbeat
	// (default DefaultHeartbeatInterval).
	HeartbeatInterval time.Duration
	// HeartbeatTimeout is what counts as a worker gone: one silent (no
	// heartbeat reaching any node) for longer is declared dead and the
	// attempts it runs are re-queued as new attempts. Until then a worker
	// whose session broke (network, engine restart, node failover) may
	// register again and resume them (default 5 × interval).
	HeartbeatTimeout time.Duration
	// MaintenanceInterval is how often timeouts and dead workers are
	// looked for (default 500ms).
	MaintenanceInterval time.Duration
	// DispatchInterval is how often queued step runs are looked for without
	// a wake-up, which picks up retries whose backoff has passed and work
	// queued by other nodes (default 200ms).
	DispatchInterval time.Duration
	// MaxBackoff caps the exponential backoff between retries (default 5m).
	MaxBackoff time.Duration
	// Retention is how long a finished run, with its events, step runs and
	// metadata, is kept after it ends (default 7 days; negative: forever).
	Retention time.Duration
	// SubscriptionHeartbeat is the longest a subscription stays silent; an
	// idle one gets an empty message or an SSE comment (default 15s).
	SubscriptionHeartbeat time.Duration
	// SubscriptionPoll is the longest a subscription waits without a
	// wake-up before reading the store again: the safety net for lost
	// wake-ups (default 2s).
	SubscriptionPoll time.Duration
	Logger           *slog.Logger
	// Clock is the engine's time: what it stores as now, and what its
	// loops, timeouts, heartbeats, backoff and retention wait on (default
	// clock.Real; tests use clocktest.Fake).
	Clock    clock.Clock
	Appender eventlog.AppenderConfig

	// MaxSubscribers bounds this node's live subscriptions (SDK and SSE, run
	// and metadata); MaxSubscribersPerToken bounds those of one non-admin
	// token on this node. 0: the defaults (DefaultMaxSubscribers,
	// DefaultMaxSubscribersPerToken); negative: no limit.
	MaxSubscribers         int
	MaxSubscribersPerToken int
	// TokenMintRate (per second) and TokenMintBurst bound how fast one token
	// may mint tokens. 0: the defaults (DefaultTokenMintRate,
	// DefaultTokenMintBurst); a negative rate: no limit.
	TokenMintRate  float64
	TokenMintBurst int
	// Metrics receives the engine's counters (nil: none).
	Metrics *metrics.Metrics
}

func (c *Config) setDefaults() {
	if c.NodeID == "" {
		c.NodeID = uuid.NewString()
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = 5 * c.HeartbeatInterval
	}
	if c.MaintenanceInterval <= 0 {
		c.MaintenanceInterval = 500 * time.Millisecond
	}
	if c.DispatchInterval <= 0 {
		c.DispatchInterval = 200 * time.Millisecond
	}
	if c.SubscriptionHeartbeat <= 0 {
		c.SubscriptionHeartbeat = 15 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Minute
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.MaxSubscribers == 0 {
		c.MaxSubscribers = DefaultMaxSubscribers
	}
	if c.MaxSubscribersPerToken == 0 {
		c.MaxSubscribersPerToken = DefaultMaxSubscribersPerToken
	}
	if c.TokenMintRate == 0 {
		c.TokenMintRate = DefaultTokenMintRate
	}
	if c.TokenMintBurst <= 0 {
		c.TokenMintBurst = DefaultTokenMintBurst
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = clock.Real()
	}
	if c.Appender.Logger == nil {
		c.Appender.Logger = c.Logger
	}
	if c.Appender.Clock == nil {
		c.Appender.Clock = c.Clock
	}
	if c.Appender.Metrics == nil {
		c.Appender.Metrics = c.Metrics
	}
}

// Engine is one engine node.
type Engine struct {
	// durables batches standalone durable stream appends (durable_batch.go).
	durables durableBatcher
	// groups shares transactions between concurrent triggers and step
	// reports (group_write.go).
	groups   groupWriter
	cfg      Config
	log      *slog.Logger
	metrics  *metrics.Metrics
	store    store.Store
	hub      *eventlog.Hub
	appender *eventlog.Appender
	reader   *eventlog.Reader
	// listener wakes subscribers and the dispatcher for other nodes'
	// commits; nil unless the store is a store.Notifier.
	listener *eventlog.Listener
	codec    eventlog.Codec
	tokens   *tokenCache
	// subscribers and mints enforce the node's limits; see limits.go.
	subscribers *subscriberGate
	mints       *mintLimiter
	// draining ends when the node starts shutting down: live subscriptions
	// and worker sessions end, new ones are refused; see drain.go.
	draining   context.Context
	startDrain context.CancelFunc

	kick chan struct{} // wakes the dispatcher (capacity 1)
	// sweepKick wakes the maintenance loop's sweep of orphaned child runs
	// (capacity 1); see children.go.
	sweepKick chan struct{}
	// retainedAt is when the maintenance loop last ran retention (zero:
	// never); only that goroutine touches it. See retention.go.
	retainedAt time.Time

	mu       sync.Mutex
	sessions map[string]*session // by worker id, on this node
	order    []string            // session ids, for round-robin dispatch
	// resumed holds, by new worker id, the attempts a registration on this
	// node resumed, until that worker's Listen starts (workers.go).
	resumed map[string]resumedAttempts

	// startedAt is when Start ran; the dead-worker sweep waits one
	// heartbeat timeout after it (maintenance.go).
	startedAt time.Time

	// dispatcher and maintainer run dispatchLoop and maintenanceLoop.
	dispatcher startstop.Base
	maintainer startstop.Base

	lifeMu  sync.Mutex
	started bool
}

// New returns an engine over st. hub must be the hub the store's commit hook
// feeds; when st is a store.Notifier, the engine also wakes hub for the
// commits of other nodes. Call Start before serving.
func New(ctx context.Context, st store.Store, hub *eventlog.Hub, cfg Config) (*Engine, error) {
	cfg.setDefaults()
	logID, err := st.LogID(ctx)
	if err != nil {
		return nil, fmt.Errorf("read event log id: %w", err)
	}
	notifier, _ := st.(store.Notifier)
	// Every write the engine and its event log make is counted, so the
	// transactions a run costs can be read off the metrics.
	st = countedStore{Store: st, metrics: cfg.Metrics}
	reader := eventlog.NewReader(st, hub)
	reader.Heartbeat = cfg.SubscriptionHeartbeat
	reader.Clock = cfg.Clock
	if cfg.SubscriptionPoll > 0 {
		reader.Poll = cfg.SubscriptionPoll
	}
	e := &Engine{
		cfg:       cfg,
		log:       cfg.Logger,
		metrics:   cfg.Metrics,
		store:     st,
		hub:       hub,
		appender:  eventlog.NewAppender(st, cfg.Appender),
		reader:    reader,
		codec:     eventlog.NewCodec(logID),
		tokens:    newTokenCache(),
		kick:      make(chan struct{}, 1),
		sweepKick: make(chan struct{}, 1),
		sessions:  make(map[string]*session),
		resumed:   make(map[string]resumedAttempts),
	}
	e.subscribers = newSubscriberGate(cfg.MaxSubscribers, cfg.MaxSubscribersPerToken)
	e.mints = newMintLimiter(cfg.TokenMintRate, cfg.TokenMintBurst)
	e.draining, e.startDrain = context.WithCancel(context.Background())
	if notifier != nil {
		e.listener = eventlog.NewListener(notifier, hub, eventlog.ListenerConfig{
			Logger: cfg.Logger, WakeFunc: e.wakeDispatcher, TokenRevoked: e.ForgetToken,
		})
	}
	return e, nil
}

// Start runs the engine's services (each a startstop.Base): the appender,
// the dispatcher, the maintenance loop and, on a store shared by several
// nodes, the listener for their commits. An engine starts once: Stop
// drains it for good.
func (e *Engine) Start(ctx context.Context) error {
	e.lifeMu.Lock()
	defer e.lifeMu.Unlock()
	if e.started {
		return errors.New("engine already started")
	}
	e.started = true
	e.startedAt = e.now()
	start := []func(context.Context) error{
		e.appender.Start,
		func(ctx context.Context) error { return e.dispatcher.Start(ctx, e.dispatchLoop) },
		func(ctx context.Context) error { return e.maintainer.Start(ctx, e.maintenanceLoop) },
	}
	if e.listener != nil {
		start = append(start, e.listener.Start)
	}
	for _, s := range start {
		if err := s(ctx); err != nil {
			e.stopServices()
			return err
		}
	}
	return nil
}

// Stop ends worker sessions (workers reconnect elsewhere or after restart),
// lets queued stream appends commit, and waits for the engine's goroutines.
// Safe to call twice, concurrently, or before Start.
func (e *Engine) Stop() {
	e.lifeMu.Lock()
	started := e.started
	e.lifeMu.Unlock()
	if !started {
		return
	}
	e.Drain()
	e.stopServices()
}

// stopServices stops what Start started (each Stop is a no-op for a
// service not started), the loops first: the appender answers appends
// until they are done.
func (e *Engine) stopServices() {
	e.dispatcher.Stop()
	e.maintainer.Stop()
	e.appender.Stop()
	if e.listener != nil {
		e.listener.Stop()
	}
}

// Codec returns the codec of client positions for this engine's log.
func (e *Engine) Codec() eventlog.Codec { return e.codec }

func (e *Engine) wakeDispatcher() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// now is the engine's time as stored: UTC, to the microsecond both stores keep.
func (e *Engine) now() time.Time { return e.cfg.Clock.Now().UTC().Truncate(time.Microsecond) }

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// notFound turns store.ErrNotFound into a coded error naming what was asked.
func notFound(err error, format string, args ...any) error {
	if errors.Is(err, store.ErrNotFound) {
		return apierr.New(apierr.NotFound, format, args...)
	}
	return err
}

// countedStore counts the engine's write transactions.
type countedStore struct {
	store.Store
	metrics *metrics.Metrics
}

func (s countedStore) Write(ctx context.Context, fn func(store.Tx) error) error {
	s.metrics.StoreWrite()
	return s.Store.Write(ctx, fn)
}
