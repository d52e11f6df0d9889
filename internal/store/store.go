// Package store defines the persistence contract of the engine: one interface,
// implemented by the sqlite and postgres subpackages, and the row types and
// sentinel errors they share. It imports nothing of the engine, so the store
// packages never depend on it.
//
// The engine's state machine is written once, against Tx; each dialect only
// implements the primitive reads and writes. Every write happens inside
// Store.Write, which runs one transaction; events appended in it get their
// positions when they are written and become visible at commit.
//
// # Positions
//
// Every event in the log has a position: an int64 that is unique across the
// whole database and increases in commit order. A reader that has seen
// position P can never later find a new event with a position below P. Both
// dialects guarantee this by serialising appends on one counter row
// (log_head): AppendEvents takes the row lock (PostgreSQL) or runs under the
// single writer (SQLite), so the transaction that takes positions first also
// commits first. AppendEvents must therefore be the last statement of a
// transaction that locks other rows, so the counter lock is held only for the
// insert and the commit, and lock order is always: runs, step runs, log_head.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/runnel-dev/runnel/internal/kinds"
)

// Sentinel errors. Drivers translate their own errors into these in one
// place, so the engine never sees a driver error type.
var (
	// ErrNotFound: the row asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique constraint was violated (a row with that key exists).
	ErrConflict = errors.New("already exists")
	// ErrRetry: the transaction lost a race (deadlock, serialisation failure)
	// and can be run again as a whole. Store.Write retries it by itself a few
	// times before returning it.
	ErrRetry = errors.New("transaction conflict, retry")
	// ErrUnavailable: the database could not be reached or the connection
	// broke (a restart, a network failure). The request may succeed if made
	// again; a write that failed this way at commit may or may not have
	// committed. The API edges answer it with Unavailable (HTTP 503), so
	// clients retry instead of reporting an internal error.
	ErrUnavailable = errors.New("the database is unreachable")
	// ErrInvalidText: a string held a character the database cannot store
	// (PostgreSQL refuses NUL). The engine refuses such text before it
	// reaches the store; this is the safety net for what it missed.
	ErrInvalidText = errors.New("text holds a character the database cannot store (NUL, \\u0000)")
)

// RunStatus is the state of a run; see package kinds, which defines the
// statuses and event types once for the store, the engine and the SDK.
type RunStatus = kinds.RunStatus

// Run states. Completed, failed, cancelled and timed out are terminal.
const (
	RunQueued    = kinds.RunQueued
	RunRunning   = kinds.RunRunning
	RunCompleted = kinds.RunCompleted
	RunFailed    = kinds.RunFailed
	RunCancelled = kinds.RunCancelled
	RunTimedOut  = kinds.RunTimedOut
)

// StepStatus is the state of a step run (of its current attempt).
type StepStatus = kinds.StepStatus

// Step run states: pending (waiting for its parents, not claimable), queued
// (claimable once AvailableAt has passed), running, and the terminal ones.
const (
	StepPending   = kinds.StepPending
	StepQueued    = kinds.StepQueued
	StepRunning   = kinds.StepRunning
	StepCompleted = kinds.StepCompleted
	StepFailed    = kinds.StepFailed
	StepCancelled = kinds.StepCancelled
	StepTimedOut  = kinds.StepTimedOut
)

// Tenant owns runs, workflows, workers and tokens.
type Tenant struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// Token kinds.
const (
	TokenAdmin   = "admin"   // may do everything, in every tenant (created on first start)
	TokenAPI     = "api"     // may do everything in its tenant
	TokenBrowser = "browser" // read-only, scoped to one run or one metadata key/value
)

// Token is an API credential. Only a hash of the secret is stored.
type Token struct {
	ID        string
	TenantID  string
	Hash      string // hex SHA-256 of the secret
	Kind      string
	Name      string
	RunID     string // browser scope: one run
	MetaKey   string // browser scope: one metadata key/value
	MetaValue string
	Stream    string    // browser scope: one standalone durable stream (its name)
	ExpiresAt time.Time // zero: never
	CreatedAt time.Time
	// RevokedAt is when the token was revoked; zero: it was not.
	RevokedAt time.Time
	// CreatedBy is the id of the token that minted this one (browser
	// tokens): revoking that token revokes this one too. Empty for others
	// and for browser tokens minted before it was recorded.
	CreatedBy string
}

// ListedToken is a token as ListTokens shows it, with its tenant's name.
type ListedToken struct {
	Token
	TenantName string
}

// Workflow is a registered workflow definition. Definition is the engine's
// JSON encoding of the steps; the store keeps it opaque.
type Workflow struct {
	TenantID   string
	Name       string
	Definition []byte
	OnEvents   []string
	UpdatedAt  time.Time
}

// Run is one execution of a workflow.
type Run struct {
	ID              string
	TenantID        string
	Workflow        string
	Status          RunStatus
	Input           []byte // JSON
	Output          []byte // JSON, set when completed
	Error           string
	Metadata        map[string]string
	ParentRunID     string
	ParentStepRunID string
	// SpawnKey makes a spawn idempotent: at most one run exists per
	// (ParentStepRunID, SpawnKey) when SpawnKey is not empty (inserting a
	// second is ErrConflict). Empty for runs not spawned with a key.
	SpawnKey   string
	CreatedAt  time.Time
	StartedAt  time.Time // zero until the first step starts
	FinishedAt time.Time // zero until terminal
}

// StepRun is one step of one run. It is retried in place: Attempt counts up,
// and each attempt is also kept as a StepAttempt.
type StepRun struct {
	ID       string
	RunID    string
	TenantID string
	Workflow string
	Step     string
	Parents  []string
	Status   StepStatus
	// Attempt is the current attempt, starting at 1 when first claimed; 0
	// while it never ran.
	Attempt int
	// Failures counts failed and timed-out attempts; retries are allowed
	// while Failures <= Retries. Attempts lost with their worker do not count.
	Failures  int
	Retries   int
	BackoffMs int64 // base of the exponential backoff between retries
	TimeoutMs int64 // per-attempt execution timeout; 0: none
	WorkerID  string
	// StreamSeq is the sequence number of the last stream event stored for
	// the current attempt: puts carry a per-attempt sequence, so a put that is
	// sent again after a lost reply is stored once.
	StreamSeq   int64
	AvailableAt time.Time // a queued step run is claimable from then on
	TimeoutAt   time.Time // a running step run times out then; zero: never
	Output      []byte    // JSON
	Error       string
	CreatedAt   time.Time
	StartedAt   time.Time // of the current attempt
	FinishedAt  time.Time
}

// StepAttempt is the history of one attempt of a step run.
type StepAttempt struct {
	StepRunID  string
	Attempt    int
	Status     StepStatus
	WorkerID   string
	Error      string
	StartedAt  time.Time
	FinishedAt time.Time
}

// Worker is one connection of a worker process. A worker that reconnects
// registers again and gets a new ID.
type Worker struct {
	ID string
	// PreviousID is the worker id the registration named as its previous
	// one ("" for none).
	PreviousID  string
	TenantID    string
	Name        string
	NodeID      string // engine node holding its connection
	Workflows   []string
	Slots       int
	Alive       bool
	HeartbeatAt time.Time
	CreatedAt   time.Time
}

// Event types of the run event log (Event.Type), as plain strings.
const (
	EventRunStarted       = string(kinds.EventRunStarted)
	EventRunCompleted     = string(kinds.EventRunCompleted)
	EventRunFailed        = string(kinds.EventRunFailed)
	EventRunCancelled     = string(kinds.EventRunCancelled)
	EventRunTimedOut      = string(kinds.EventRunTimedOut)
	EventStepStarted      = string(kinds.EventStepStarted)
	EventStepCompleted    = string(kinds.EventStepCompleted)
	EventStepFailed       = string(kinds.EventStepFailed)
	EventStepCancelled    = string(kinds.EventStepCancelled)
	EventStepTimedOut     = string(kinds.EventStepTimedOut)
	EventStepStream       = string(kinds.EventStepStream)
	EventStepStreamClosed = string(kinds.EventStepStreamClosed)
)

// Event is one entry of the run event log.
type Event struct {
	// Position is assigned by AppendEvents; see the package comment.
	Position  int64
	TenantID  string
	RunID     string
	Workflow  string
	Type      string
	StepRunID string // step events only
	Step      string
	Attempt   int
	// Stream names the stream of a step.stream or step.stream_closed event;
	// "" is the run's default stream.
	Stream string
	// Payload is the data a step put on the stream (step.stream only).
	Payload []byte
	// Data is a JSON object with the event's details (output, error, ...);
	// nil when there are none.
	Data      []byte
	CreatedAt time.Time
}

// Terminal reports whether the event ends its run.
func (e Event) Terminal() bool { return kinds.EventType(e.Type).Terminal() }

// ClaimParams selects queued step runs for one worker.
type ClaimParams struct {
	TenantID  string
	WorkerID  string
	Workflows []string // workflow names the worker runs
	Now       time.Time
	Limit     int
}

// ClaimStepRunParams claims one step run.
type ClaimStepRunParams struct {
	StepRunID string
	WorkerID  string
	Now       time.Time
	TimeoutAt time.Time // zero: no timeout
}

// ListRunsParams filters runs, newest first.
type ListRunsParams struct {
	TenantID  string
	Workflow  string    // optional
	Status    RunStatus // optional
	MetaKey   string    // optional, with MetaValue
	MetaValue string
	// Before pages: only runs created strictly before this run ID (IDs are
	// UUIDv7, ordered by creation). Optional.
	Before string
	Limit  int
}

// ReadEventsParams reads a run's events after a position.
type ReadEventsParams struct {
	TenantID string
	RunID    string
	After    int64 // exclusive; 0 reads from the start
	Limit    int
	// MaxBytes stops a page early once its payloads reach this many bytes
	// (always at least one event). 0: no byte limit.
	MaxBytes int
}

// ReadMetadataEventsParams reads, after a position, the events of every run
// of a tenant whose additional metadata has Key = Value.
type ReadMetadataEventsParams struct {
	TenantID string
	Key      string
	Value    string
	After    int64 // exclusive; 0 reads from the start of the log
	Limit    int
	// MaxBytes stops a page early, as in ReadEventsParams.
	MaxBytes int
}

// Page sizes of ListRuns, ReadEvents and ReadMetadataEvents. A Limit of 0 or
// less asks for the default page, and a larger one is capped at the
// maximum; both stores apply them through the params' PageLimit methods.
const (
	DefaultRunsLimit   = 50
	MaxRunsLimit       = 1000
	DefaultEventsLimit = 1000
	MaxEventsLimit     = 10000
)

// PageLimit is the number of runs ListRuns returns at most for p.
func (p ListRunsParams) PageLimit() int { return pageLimit(p.Limit, DefaultRunsLimit, MaxRunsLimit) }

// PageLimit is the number of events ReadEvents returns at most for p.
func (p ReadEventsParams) PageLimit() int {
	return pageLimit(p.Limit, DefaultEventsLimit, MaxEventsLimit)
}

// PageLimit is the number of events ReadMetadataEvents returns at most for p.
func (p ReadMetadataEventsParams) PageLimit() int {
	return pageLimit(p.Limit, DefaultEventsLimit, MaxEventsLimit)
}

func pageLimit(limit, def, most int) int {
	if limit <= 0 {
		return def
	}
	return min(limit, most)
}

// Tx is one write transaction. Reads through Tx that name a row for update
// lock it (PostgreSQL FOR UPDATE) until the transaction ends.
type Tx interface {
	CreateTenant(ctx context.Context, t Tenant) error
	GetTenantByName(ctx context.Context, name string) (Tenant, error)
	CreateToken(ctx context.Context, t Token) error
	// GetTokenForUpdate reads and locks a token by id.
	GetTokenForUpdate(ctx context.Context, id string) (Token, error)
	// RevokeToken sets RevokedAt = now on the token with this id and on
	// the browser tokens it created (CreatedBy), those not revoked yet, and
	// returns their ids (none when all were revoked already). Errors:
	// ErrNotFound when no token has this id.
	RevokeToken(ctx context.Context, id string, now time.Time) ([]string, error)

	// UpsertWorkflow stores a definition, replacing an older one of that name.
	UpsertWorkflow(ctx context.Context, w Workflow) error
	GetWorkflow(ctx context.Context, tenantID, name string) (Workflow, error)

	InsertRun(ctx context.Context, r Run) error
	// GetRunForUpdate reads and locks a run.
	GetRunForUpdate(ctx context.Context, tenantID, runID string) (Run, error)
	// UpdateRun writes Status, Output, Error, StartedAt and FinishedAt.
	UpdateRun(ctx context.Context, r Run) error

	InsertStepRuns(ctx context.Context, steps []StepRun) error
	// GetStepRunForUpdate reads and locks a step run. Lock the run first.
	GetStepRunForUpdate(ctx context.Context, stepRunID string) (StepRun, error)
	// StreamClosed reports whether a step.stream_closed event of this
	// attempt names stream.
	StreamClosed(ctx context.Context, stepRunID string, attempt int, stream string) (bool, error)
	// ListStepRunsForUpdate reads and locks every step run of a run.
	ListStepRunsForUpdate(ctx context.Context, runID string) ([]StepRun, error)
	// UpdateStepRun writes every field from Status to FinishedAt except
	// CreatedAt; the identity fields (ID through Parents) never change.
	UpdateStepRun(ctx context.Context, s StepRun) error
	// ListClaimableStepRuns returns up to Limit queued step runs of the
	// tenant and workflows whose AvailableAt is at or before Now, oldest
	// first, without locking them (WorkerID is ignored).
	ListClaimableStepRuns(ctx context.Context, p ClaimParams) ([]StepRun, error)
	// ClaimStepRun makes one step run running for a worker if it is still
	// queued: Attempt+1, WorkerID, StartedAt = now, TimeoutAt as given,
	// FinishedAt 0, StreamSeq 0, Error "". It reports false (and no error)
	// when the step run is no longer queued. Lock its run first.
	ClaimStepRun(ctx context.Context, p ClaimStepRunParams) (StepRun, bool, error)
	// ListTimedOutStepRuns returns running step runs whose TimeoutAt is at or
	// before now, oldest first, skipping rows locked by others.
	ListTimedOutStepRuns(ctx context.Context, now time.Time, limit int) ([]StepRun, error)
	// ListStepRunsOfWorker returns the running step runs assigned to a worker.
	ListStepRunsOfWorker(ctx context.Context, workerID string) ([]StepRun, error)

	// UpsertStepAttempt records an attempt (keyed by step run and attempt).
	UpsertStepAttempt(ctx context.Context, a StepAttempt) error

	InsertWorker(ctx context.Context, w Worker) error
	GetWorkerForUpdate(ctx context.Context, workerID string) (Worker, error)
	// MarkWorkerDead sets Alive to false; reports whether it was alive.
	MarkWorkerDead(ctx context.Context, workerID string) (bool, error)
	// ListDeadWorkers returns alive workers whose last heartbeat is before
	// the deadline, skipping rows locked by others.
	ListDeadWorkers(ctx context.Context, heartbeatBefore time.Time, limit int) ([]Worker, error)

	// GetChildRunBySpawnKey reads, without locking, the run spawned from a
	// step run with a non-empty spawn key; ErrNotFound if there is none.
	GetChildRunBySpawnKey(ctx context.Context, parentStepRunID, key string) (Run, error)
	// ListActiveChildRuns returns the queued and running children of a run,
	// oldest first, without locking them (lock each in a transaction of its
	// own: a child is never locked while its parent is).
	ListActiveChildRuns(ctx context.Context, parentRunID string) ([]Run, error)
	// ListOrphanedChildRuns returns up to limit queued or running runs whose
	// parent run failed, was cancelled or timed out, without locking them.
	ListOrphanedChildRuns(ctx context.Context, limit int) ([]Run, error)

	// DeleteFinishedRuns deletes up to limit terminal runs whose FinishedAt
	// is before finishedBefore, oldest first, with their events, step runs,
	// step attempts and metadata, and returns how many runs it deleted
	// (fewer than limit: nothing more is due). It never deletes a run that
	// is not terminal, and skips a run with unfinished children and a child
	// whose parent is unfinished (both are due again once those end). Rows
	// locked by others are skipped, so nodes may run it at once. Retention
	// runs it in a transaction of its own: it locks a batch of runs.
	DeleteFinishedRuns(ctx context.Context, finishedBefore time.Time, limit int) (int, error)

	// AppendEvents writes events to the log, assigning consecutive positions
	// in slice order (written back into the slice). Call it last in a
	// transaction: it takes the log's counter lock until commit.
	AppendEvents(ctx context.Context, events []Event) error

	DurableTx
}

// Store is the engine's database.
type Store interface {
	// Write runs fn in one write transaction and commits it if fn returns
	// nil. On ErrRetry it runs fn again (a few times), so fn must not have
	// effects outside the transaction. After a commit that appended events,
	// the commit hook (see Options) is called with them.
	Write(ctx context.Context, fn func(Tx) error) error

	// LogID identifies this database's event log. It is chosen at creation
	// and never changes, so a position from another database can be refused.
	LogID(ctx context.Context) (string, error)

	GetRun(ctx context.Context, tenantID, runID string) (Run, error)
	ListRuns(ctx context.Context, p ListRunsParams) ([]Run, error)
	ListStepRuns(ctx context.Context, runID string) ([]StepRun, error)
	// GetStepRun reads a step run without locking it (to learn its run
	// before locking the run, then the step run, in that order).
	GetStepRun(ctx context.Context, stepRunID string) (StepRun, error)
	ListStepAttempts(ctx context.Context, runID string) ([]StepAttempt, error)
	ListWorkflows(ctx context.Context, tenantID string) ([]Workflow, error)
	GetWorkflowByName(ctx context.Context, tenantID, name string) (Workflow, error)
	GetTenant(ctx context.Context, id string) (Tenant, error)
	CountTenants(ctx context.Context) (int, error)
	// CountActiveRuns counts the queued and running runs of every tenant:
	// the map always has both statuses. It reads an index of active runs
	// only, so it is cheap enough for every metrics scrape.
	CountActiveRuns(ctx context.Context) (map[RunStatus]int, error)

	// LookupToken finds a token by the hash of its secret (also an expired
	// or revoked one: the caller decides, and can say why it refuses it).
	LookupToken(ctx context.Context, hash string) (Token, error)
	// ListTokens returns the API and admin tokens of every tenant (not
	// browser tokens), revoked and expired ones included, oldest first.
	ListTokens(ctx context.Context) ([]ListedToken, error)

	// TouchWorker records a heartbeat of a worker of the tenant; ErrNotFound
	// if the worker is unknown, of another tenant, or no longer alive.
	TouchWorker(ctx context.Context, tenantID, workerID string, now time.Time) error

	// ReadEvents reads a run's events after a position, in position order.
	ReadEvents(ctx context.Context, p ReadEventsParams) ([]Event, error)
	// ListChildRuns returns the runs spawned from a run's steps, oldest
	// first.
	ListChildRuns(ctx context.Context, tenantID, parentRunID string) ([]Run, error)
	// LastRunPosition returns the position of a run's newest event, 0 if it
	// has none.
	LastRunPosition(ctx context.Context, tenantID, runID string) (int64, error)
	// LastStreamPosition returns the position of a run's newest step.stream
	// event on one of streams ("" is the default stream; nil: any stream), 0
	// if there is none.
	LastStreamPosition(ctx context.Context, tenantID, runID string, streams []string) (int64, error)
	// ReadMetadataEvents reads, in position order, the events after a
	// position of every run of the tenant whose metadata has Key = Value,
	// whenever the run was created. It reads in one statement (one
	// snapshot), and a run's metadata is written with the run (InsertRun)
	// and never changes, so an event matches from the moment it commits:
	// like ReadEvents, a page is exactly the matching events after After up
	// to its last one, and none can later appear below it.
	ReadMetadataEvents(ctx context.Context, p ReadMetadataEventsParams) ([]Event, error)
	// LastPosition returns the log's newest position (0 for an empty log).
	// Every event at or below it has committed (positions follow commit
	// order), so reading after it yields exactly the events appended later.
	LastPosition(ctx context.Context) (int64, error)

	DurableReader

	Close() error
}

// Notifier is implemented by a store that can tell every engine node
// sharing its database that events were appended (PostgreSQL, through
// LISTEN/NOTIFY). The commit hook only sees this node's commits; a store
// that only one node can open (SQLite) has nothing more to tell and does
// not implement Notifier. The engine type-asserts it once, at start, and
// runs an eventlog.Listener over it.
type Notifier interface {
	// Listen calls n.Events whenever a transaction that appended events
	// commits, on any node, and n.TokenRevoked when a token revocation
	// commits; both once more after every (re)connection, since
	// notifications sent while nobody listened are lost. Listen reconnects
	// by itself after a failure, reporting it to n.Error, and returns when
	// ctx ends.
	Listen(ctx context.Context, n Notifications)
}

// Notifications receive what a Notifier hears.
type Notifications struct {
	// Events: a transaction that appended events committed, and after
	// every (re)connection. A wake-up is a hint, never data: it should
	// make readers look at the store again.
	Events func()
	// TokenRevoked: a token's revocation committed, with its id; "" after
	// every (re)connection, since a revocation may have been missed:
	// forget every cached token then. Optional.
	TokenRevoked func(tokenID string)
	// Error is told why the connection failed, before each reconnection.
	Error func(error)
}

// CommitHook is called after a transaction that appended events has
// committed, with those events (positions set). It must not block: the
// engine's notifier only records which runs moved.
type CommitHook func(events []Event)

// Options configure a store when it is opened.
type Options struct {
	// CommitHook, if set, is called after every commit that appended events.
	CommitHook CommitHook
}
