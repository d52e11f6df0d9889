package engine

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/internal/apierr"
)

// Defaults of the limits that protect a node. They sit well above what one
// application normally needs: the benchmark follows one run with 10,000 SSE
// subscribers on a single node, with the admin token.
const (
	// DefaultMaxSubscribers bounds the live subscriptions of one node: SDK
	// Subscribe and SubscribeMetadata calls and SSE run and metadata
	// streams. Each costs a connection (a file descriptor), a goroutine and
	// its buffers.
	DefaultMaxSubscribers = 20000
	// DefaultMaxSubscribersPerToken bounds the live subscriptions one token
	// holds on one node, so a leaked browser token or a runaway backend
	// cannot take the whole node. Admin tokens are held only to the node's
	// limit: they belong to the operator.
	DefaultMaxSubscribersPerToken = 10000
	// DefaultTokenMintRate and DefaultTokenMintBurst bound how fast one
	// token may mint tokens (API tokens by the admin, browser tokens by
	// backends): a token bucket of DefaultTokenMintBurst mints refilled at
	// DefaultTokenMintRate per second. Each mint is a store write.
	DefaultTokenMintRate  = 10.0
	DefaultTokenMintBurst = 50
)

// subscriberRetryAfter is the wait suggested to a subscriber refused for a
// full node or token: subscriptions end all the time, so soon is fine.
const subscriberRetryAfter = time.Second

// subscriberGate counts the live subscriptions of a node, in total and per
// token, and refuses those over the limits.
type subscriberGate struct {
	maxTotal, maxPerToken int // <= 0: no limit

	mu      sync.Mutex
	total   int
	byToken map[string]int
}

func newSubscriberGate(maxTotal, maxPerToken int) *subscriberGate {
	return &subscriberGate{maxTotal: maxTotal, maxPerToken: maxPerToken, byToken: map[string]int{}}
}

// acquire takes a place for a subscription of p; release gives it back.
// Errors: ResourceExhausted (with a RetryAfter) naming the limit hit.
func (g *subscriberGate) acquire(p Principal) (release func(), err error) {
	perToken := g.maxPerToken > 0 && !p.IsAdmin()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.maxTotal > 0 && g.total >= g.maxTotal {
		return nil, &apierr.Error{
			Code: apierr.ResourceExhausted, RetryAfter: subscriberRetryAfter,
			Message: fmt.Sprintf("this engine node already serves %d subscriptions, its limit (--max-subscribers); retry later or on another node", g.maxTotal),
		}
	}
	if perToken && g.byToken[p.TokenID] >= g.maxPerToken {
		return nil, &apierr.Error{
			Code: apierr.ResourceExhausted, RetryAfter: subscriberRetryAfter,
			Message: fmt.Sprintf("this token already holds %d subscriptions on this node, the limit per token (--max-subscribers-per-token); close some, or mint more tokens", g.maxPerToken),
		}
	}
	g.total++
	g.byToken[p.TokenID]++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.total--
			if g.byToken[p.TokenID]--; g.byToken[p.TokenID] <= 0 {
				delete(g.byToken, p.TokenID)
			}
		})
	}, nil
}

// count returns the node's live subscriptions.
func (g *subscriberGate) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total
}

// Subscribers returns how many subscriptions this node serves now.
func (e *Engine) Subscribers() int { return e.subscribers.count() }

// mintLimiter is a token bucket per minting token: burst mints at once,
// then rate per second.
type mintLimiter struct {
	rate  float64 // <= 0: no limit
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket // by token id
}

type bucket struct {
	level float64 // mints available now
	at    time.Time
}

// maxIdleBuckets bounds the limiter's memory: past it, buckets that have
// refilled (whose tokens have been quiet) are forgotten, which changes
// nothing for them.
const maxIdleBuckets = 10000

func newMintLimiter(rate float64, burst int) *mintLimiter {
	return &mintLimiter{rate: rate, burst: float64(max(burst, 1)), buckets: map[string]*bucket{}}
}

// take spends one mint of tokenID at now. Errors: ResourceExhausted with
// the wait until the next mint is allowed.
func (l *mintLimiter) take(tokenID string, now time.Time) error {
	if l.rate <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[tokenID]
	if !ok {
		if len(l.buckets) >= maxIdleBuckets {
			l.forgetFull(now)
		}
		b = &bucket{level: l.burst, at: now}
		l.buckets[tokenID] = b
	}
	l.refill(b, now)
	if b.level < 1 {
		wait := time.Duration(math.Ceil((1 - b.level) / l.rate * float64(time.Second)))
		return &apierr.Error{
			Code: apierr.ResourceExhausted, RetryAfter: wait,
			Message: fmt.Sprintf("this token mints tokens too fast: at most %d at once, then %g per second (--token-mint-rate, --token-mint-burst); retry in %s",
				int(l.burst), l.rate, wait.Round(time.Millisecond)),
		}
	}
	b.level--
	return nil
}

// refund gives back a mint taken for a request that then failed (an
// unknown run, a store error): only tokens actually minted count.
func (l *mintLimiter) refund(tokenID string) {
	if l.rate <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[tokenID]; ok {
		b.level = min(l.burst, b.level+1)
	}
}

func (l *mintLimiter) refill(b *bucket, now time.Time) {
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.level = min(l.burst, b.level+elapsed.Seconds()*l.rate)
		b.at = now
	}
}

func (l *mintLimiter) forgetFull(now time.Time) {
	for id, b := range l.buckets {
		if l.refill(b, now); b.level >= l.burst {
			delete(l.buckets, id)
		}
	}
}
