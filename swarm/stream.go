package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Handler answers one request. from is the requester's peer id, proven by
// the transport. A returned error reaches the requester as a *RemoteError
// with the error's text. ctx ends at the exchange's deadline or when the
// swarm closes. Handlers run concurrently, one goroutine per request.
type Handler func(ctx context.Context, from string, req Envelope) (Envelope, error)

// RemoteError is a request's failure as reported by the node that handled
// it (its handler's error, or a refused request).
type RemoteError struct {
	Peer    string // the peer id that answered
	Message string
}

func (e *RemoteError) Error() string { return fmt.Sprintf("peer %s: %s", e.Peer, e.Message) }

// ErrUnknownPeer is returned by Request for a peer id that does not parse.
var ErrUnknownPeer = errors.New("unknown peer")

// Handle serves requests for a protocol id (e.g. "/loadswarm/query/1"),
// replacing any earlier handler of the same id. Each exchange is one
// request envelope and one answer envelope on a fresh stream, bounded by
// Config.RequestTimeout.
func (s *Swarm) Handle(protocolID string, h Handler) {
	s.host.SetStreamHandler(protocol.ID(protocolID), func(str network.Stream) {
		s.serve(str, h)
	})
}

// RemoveHandler stops serving a protocol id.
func (s *Swarm) RemoveHandler(protocolID string) {
	s.host.RemoveStreamHandler(protocol.ID(protocolID))
}

func (s *Swarm) serve(str network.Stream, h Handler) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.RequestTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	_ = str.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = str.Reset() }) // swarm closing
	defer stop()
	remote := str.Conn().RemotePeer()

	answer := func(e Envelope) {
		e.Sender = s.PeerID()
		b, err := e.Marshal()
		if err != nil {
			b, _ = errorEnvelope(s.PeerID(), "encode answer: "+err.Error()).Marshal()
		}
		if _, err := str.Write(b); err != nil {
			_ = str.Reset()
			return
		}
		_ = str.Close()
	}

	b, err := readLimited(str, s.cfg.Limits.MaxBytes)
	var req Envelope
	if err == nil {
		req, err = s.dec.Decode(b)
	}
	if err == nil && req.Sender != remote.String() {
		err = fmt.Errorf("%w: sender %q is not the stream's peer", ErrMalformed, req.Sender)
	}
	if err != nil {
		s.rejected.Add(1)
		s.log.Debug("request refused", "protocol", string(str.Protocol()), "from", remote.String(), "error", err)
		answer(errorEnvelope(s.PeerID(), "request refused: "+err.Error()))
		return
	}
	resp, err := h(ctx, remote.String(), req)
	if err != nil {
		answer(errorEnvelope(s.PeerID(), err.Error()))
		return
	}
	answer(resp)
}

func errorEnvelope(sender, msg string) Envelope {
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	e, _ := NewEnvelope(TypeError, 1, "", ErrorBody{Message: msg})
	e.Sender = sender
	return e
}

// Request sends req to the peer over a fresh stream of protocolID and
// waits for the answer, until ctx ends or Config.RequestTimeout passes,
// whichever is first. The peer must be a member (its address comes from
// membership). A TypeError answer comes back as a *RemoteError.
func (s *Swarm) Request(ctx context.Context, peerID string, protocolID string, req Envelope) (Envelope, error) {
	pid, err := peer.Decode(peerID)
	if err != nil {
		return Envelope{}, fmt.Errorf("request %s: %w: %q", protocolID, ErrUnknownPeer, peerID)
	}
	if s.isClosed() {
		return Envelope{}, ErrClosed
	}
	req.Sender = s.PeerID()
	b, err := req.Marshal()
	if err != nil {
		return Envelope{}, err
	}
	if len(b) > s.cfg.Limits.MaxBytes {
		return Envelope{}, fmt.Errorf("request %s: %w: %d bytes, limit %d", protocolID, ErrTooLarge, len(b), s.cfg.Limits.MaxBytes)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	fail := func(err error) (Envelope, error) {
		var ne net.Error
		switch {
		case ctx.Err() != nil && !errors.Is(err, ctx.Err()):
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
			// The stream's deadline is ctx's: it can fire a moment before ctx.
			err = fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
		}
		return Envelope{}, fmt.Errorf("request %s to %s: %w", protocolID, shortID(peerID), err)
	}

	str, err := s.host.NewStream(ctx, pid, protocol.ID(protocolID))
	if err != nil {
		return fail(err)
	}
	defer str.Close()
	stop := context.AfterFunc(ctx, func() { _ = str.Reset() })
	defer stop()
	deadline, _ := ctx.Deadline()
	_ = str.SetDeadline(deadline)

	if _, err := str.Write(b); err != nil {
		_ = str.Reset()
		return fail(err)
	}
	if err := str.CloseWrite(); err != nil {
		_ = str.Reset()
		return fail(err)
	}
	rb, err := readLimited(str, s.cfg.Limits.MaxBytes)
	if err != nil {
		_ = str.Reset()
		return fail(err)
	}
	resp, err := s.dec.Decode(rb)
	if err != nil {
		return fail(err)
	}
	if resp.Sender != peerID {
		return fail(fmt.Errorf("%w: answer's sender %q is not the peer", ErrMalformed, resp.Sender))
	}
	if resp.Type == TypeError {
		var eb ErrorBody
		if err := resp.DecodeBody(&eb); err != nil {
			return fail(err)
		}
		return Envelope{}, &RemoteError{Peer: peerID, Message: eb.Message}
	}
	return resp, nil
}

// readLimited reads r to its end, refusing more than limit bytes.
func readLimited(r io.Reader, limit int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	return b, nil
}

func shortID(pid string) string {
	if len(pid) > 12 {
		return "…" + pid[len(pid)-8:]
	}
	return pid
}
