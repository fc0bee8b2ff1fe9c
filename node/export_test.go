package node

import (
	"context"
	"time"

	"github.com/loadswarm/loadswarm/storage"
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
	n.reg.close()
	n.cancel()
	_ = n.srv.Shutdown(context.Background())
	_ = n.sw.Close()
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

// Isolate cuts the node off from the fleet (both layers) or restores it.
func (n *Node) Isolate(on bool) { n.SetIsolated(on) }
