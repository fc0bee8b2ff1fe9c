package scenarios

import (
	"context"
	"math/rand/v2"
	"net"
	"time"
)

// LatencyDial wraps a dialer so that every connection behaves as if the
// target were rtt (plus a uniform 0..jitter) away: the connection set-up
// costs one round trip, and so does every request written on it. It stands
// in for the kernel's netem, which is not available everywhere, to give
// testnet nodes the distance of their simulated region.
func LatencyDial(dial func(ctx context.Context, network, addr string) (net.Conn, error), rtt, jitter time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if dial == nil {
		d := &net.Dialer{Timeout: DefaultTimeout, KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	if rtt <= 0 && jitter <= 0 {
		return dial
	}
	delay := func() time.Duration {
		d := rtt
		if jitter > 0 {
			d += rand.N(jitter)
		}
		return d
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		t := time.NewTimer(delay())
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &slowConn{Conn: c, delay: delay}, nil
	}
}

// slowConn delays each write by a round trip: for HTTP/1.1, one write per
// request, so each request waits as long as the way there and back.
type slowConn struct {
	net.Conn
	delay func() time.Duration
}

func (c *slowConn) Write(p []byte) (int, error) {
	time.Sleep(c.delay())
	return c.Conn.Write(p)
}
