package swarm

import (
	"errors"
	"log"
	"net"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// errIsolated is what a cut-off node's dials fail with.
var errIsolated = errors.New("this node is isolated from the fleet")

// SetIsolated cuts this node off from the fleet, or restores it: gossip
// packets and streams in both directions are dropped and libp2p refuses and
// closes every connection, as a network partition would, while the process
// (and the load it generates) goes on. It is a fault-injection switch for
// partition tests and demonstrations.
func (s *Swarm) SetIsolated(on bool) {
	s.isolated.Store(on)
	if on {
		for _, p := range s.host.Network().Peers() {
			_ = s.host.Network().ClosePeer(p)
		}
	}
}

// Isolated reports whether SetIsolated cut the node off.
func (s *Swarm) Isolated() bool { return s.isolated.Load() }

// gatedTransport is memberlist's network transport behind the isolation
// switch. Every method that moves bytes is overridden: the embedded
// transport's would bypass the switch.
type gatedTransport struct {
	*memberlist.NetTransport
	off     *atomic.Bool
	packets chan *memberlist.Packet
	streams chan net.Conn
	closing chan struct{} // Shutdown began: drop instead of delivering
	stopped chan struct{} // the network transport is down: forwarders exit
}

var _ memberlist.NodeAwareTransport = (*gatedTransport)(nil)

// newGatedTransport wraps a new network transport. Its forwarders keep
// draining the transport's channels until it is shut down: a listener
// blocked on an unread channel would hold its Shutdown forever.
func newGatedTransport(bindAddr string, port int, logger *log.Logger, off *atomic.Bool) (*gatedTransport, error) {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{bindAddr}, BindPort: port, Logger: logger})
	if err != nil {
		return nil, err
	}
	t := &gatedTransport{NetTransport: nt, off: off, packets: make(chan *memberlist.Packet), streams: make(chan net.Conn),
		closing: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		for {
			select {
			case <-t.stopped:
				return
			case p := <-nt.PacketCh():
				if off.Load() {
					continue
				}
				select {
				case t.packets <- p:
				case <-t.closing:
				}
			}
		}
	}()
	go func() {
		for {
			select {
			case <-t.stopped:
				return
			case c := <-nt.StreamCh():
				if off.Load() {
					c.Close()
					continue
				}
				select {
				case t.streams <- c:
				case <-t.closing:
					c.Close()
				}
			}
		}
	}()
	return t, nil
}

// Shutdown stops delivering, shuts the network transport down, and ends
// the forwarders.
func (t *gatedTransport) Shutdown() error {
	select {
	case <-t.closing:
		return nil // already shut down
	default:
	}
	close(t.closing)
	err := t.NetTransport.Shutdown()
	close(t.stopped)
	return err
}

func (t *gatedTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }
func (t *gatedTransport) StreamCh() <-chan net.Conn           { return t.streams }

func (t *gatedTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.off.Load() {
		return time.Now(), nil // lost on the way, as on a cut link
	}
	return t.NetTransport.WriteTo(b, addr)
}

func (t *gatedTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.off.Load() {
		return time.Now(), nil
	}
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *gatedTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.off.Load() {
		return nil, errIsolated
	}
	return t.NetTransport.DialTimeout(addr, timeout)
}

func (t *gatedTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.off.Load() {
		return nil, errIsolated
	}
	return t.NetTransport.DialAddressTimeout(a, timeout)
}

// gater refuses every libp2p connection while the node is isolated.
type gater struct{ off *atomic.Bool }

func (g gater) InterceptPeerDial(peer.ID) bool               { return !g.off.Load() }
func (g gater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return !g.off.Load() }
func (g gater) InterceptAccept(network.ConnMultiaddrs) bool  { return !g.off.Load() }
func (g gater) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return !g.off.Load()
}
func (g gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return !g.off.Load(), 0
}
