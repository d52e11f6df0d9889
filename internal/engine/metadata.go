package engine

import (
	"context"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/runnel-dev/runnel/internal/eventlog"
	"github.com/runnel-dev/runnel/internal/metrics"
	"github.com/runnel-dev/runnel/internal/store"
)

// SubscribeMetadataParams opens a metadata subscription: every event of
// every run of the tenant whose additional metadata has Key = Value.
type SubscribeMetadataParams struct {
	TenantID string
	Key      string
	Value    string
	// From is "" or "start" (the first event of the oldest matching run
	// still stored), "now" (only new events), or a client position to resume
	// after (a position from a run subscription of a matching run works
	// too: positions are global).
	From  string
	Types []string
	// Principal is who subscribes, counted against the subscriber limits.
	Principal Principal
}

// SubscribeMetadata delivers the events of every run carrying the pair,
// those that exist and those created later, in one order, from the start
// point; see eventlog.Reader.FollowMetadata. It never ends by itself: it
// returns when ctx ends (ctx's error), deliver fails, or the store fails.
// Errors: InvalidArgument for a missing or oversized key or value, a bad
// start point or an unknown type; ResourceExhausted over the subscriber
// limits; Unavailable when the node is shutting down.
func (e *Engine) SubscribeMetadata(ctx context.Context, p SubscribeMetadataParams, deliver eventlog.Deliver) error {
	if p.Key == "" {
		return apierr.New(apierr.InvalidArgument, "a metadata subscription needs a key (the additional metadata key to follow)")
	}
	if err := checkTexts("metadata key", p.Key, "metadata value", p.Value); err != nil {
		return err
	}
	// Checked here, once, for every edge: a browser token follows only the
	// pair it was minted for.
	if !p.Principal.CanFollowMetadata(p.Key, p.Value) {
		return apierr.New(apierr.PermissionDenied, "this token may only follow the metadata pair it was minted for")
	}
	// A pair no run can carry (TriggerRun refuses such keys and values) is
	// a mistake worth reporting rather than a subscription that stays
	// silent forever.
	if len(p.Key) > maxMetaKeyLen {
		return apierr.New(apierr.InvalidArgument, "metadata key of %d bytes: want 1-%d bytes", len(p.Key), maxMetaKeyLen)
	}
	if len(p.Value) > maxMetaValueLen {
		return apierr.New(apierr.InvalidArgument, "metadata value of %d bytes, more than the limit of %d", len(p.Value), maxMetaValueLen)
	}
	start, err := e.parseSubscription(ctx, p.From, p.Types)
	if err != nil {
		return err
	}
	ctx, finish, err := e.subscription(ctx, p.Principal)
	if err != nil {
		return err
	}
	sub := e.metrics.Subscribed(ctx, metrics.SourceMetadata)
	defer sub.Done()
	return finish(e.reader.FollowMetadata(ctx, eventlog.MetadataFollowParams{
		TenantID: p.TenantID, Key: p.Key, Value: p.Value,
		After: start.after, FromNow: start.fromNow, Types: start.types,
	}, sub.Deliver(deliver)))
}

// SubscriptionStats reports the live subscription feeds of this node (how
// many, and their largest in-memory tail), for metrics and tests.
func (e *Engine) SubscriptionStats() eventlog.FeedStats { return e.reader.Stats() }

// CanFollowMetadata reports whether the principal may subscribe to the runs
// carrying key = value: API and admin tokens to any pair of their tenant,
// a browser token only to the pair it was minted for (a token minted for
// one run may not widen its view this way).
func (p Principal) CanFollowMetadata(key, value string) bool {
	if p.Kind != store.TokenBrowser {
		return true
	}
	return p.RunID == "" && p.MetaKey != "" && p.MetaKey == key && p.MetaValue == value
}
