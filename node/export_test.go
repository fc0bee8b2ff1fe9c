package node

import (
	"context"
	"time"

	"github.com/loadswarm/loadswarm/storage"
	"github.com/loadswarm/loadswarm/swarm"
)

// Crash stops the node the way a kill -9 would, as far as one process can:
// its shares stop at once (requests in flight cut off), and it leaves the
// fleet without a word, so the others see it fail.
func (n *Node) Crash() {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed {
		return
	}
	n.closed = true
	// The transport goes first: a killed process says nothing more (its
	// share's last word, its current second, never leave).
	_ = n.sw.Close()
	n.reg.close()
	n.cancel()
	_ = n.srv.Shutdown(context.Background())
	n.wg.Wait()
	_ = n.store.Close()
}

// Store exposes the node's results store to tests.
func (n *Node) Store() *storage.Store { return n.store }

// SetRetireAfter shortens how long a finished test stays live, for tests.
func SetRetireAfter(d time.Duration) func() {
	old := retireAfter
	retireAfter = d
	return func() { retireAfter = old }
}

// DeafToStats makes the node drop every stats message from now on (on) or
// hear them again: a scheduler that still sees its fleet but no longer
// hears from it.
func (n *Node) DeafToStats(on bool) { n.reg.deafToStats.Store(on) }

// Isolate cuts the node off from the fleet (both layers) or restores it.
func (n *Node) Isolate(on bool) { n.SetIsolated(on) }

// SignAnnounce signs a test's body with a swarm's key: a hostile member's
// announcements in tests.
func SignAnnounce(sw *swarm.Swarm, b AnnounceBody) (Announce, error) { return signAnnounce(sw, b) }

// IDOf is the id of an announced test.
func IDOf(a Announce) string { return testIDOf(a.Body) }

// SubmitSigned announces a test this node signed (see SignAnnounce) as
// Submit does: a test can choose the seed, and so the test's id.
func (n *Node) SubmitSigned(ctx context.Context, a Announce) (string, error) {
	id, err := n.reg.admit(a)
	if err != nil {
		return "", err
	}
	return id, swarm.Publish(ctx, n.reg.fleet, TypeTestAnnounce, wireVersion, id, a)
}
