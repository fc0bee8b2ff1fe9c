package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

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
		if err == nil {
			err = s.reg.Check(e.Type, KindAnswer, len(b))
		}
		if err != nil {
			// The handler's bug: the requester would refuse the answer.
			s.log.Error("answer refused", "protocol", string(str.Protocol()), "type", s.reg.Name(e.Type), "error", err)
			b, _ = s.errorEnvelope("answer refused: " + err.Error()).Marshal()
		}
		if _, err := str.Write(b); err != nil {
			_ = str.Reset()
			return
		}
		_ = str.Close()
	}

	b, err := readLimited(str, s.reg.MaxBytes(KindRequest))
	var req Envelope
	if err == nil {
		req, err = s.dec.DecodeKind(b, KindRequest)
	}
	if err == nil && req.Sender != remote.String() {
		err = fmt.Errorf("%w: sender %q is not the stream's peer", errForgedSender, shortID(req.Sender))
	}
	if err != nil {
		s.refuse(refusalReason(err), remote, 0, time.Now(), "request refused", "protocol", string(str.Protocol()), "error", err)
		answer(s.errorEnvelope("request refused: " + err.Error()))
		return
	}
	resp, err := h(ctx, remote.String(), req)
	if err != nil {
		answer(s.errorEnvelope(err.Error()))
		return
	}
	answer(resp)
}

// errorEnvelope is a TypeError answer of msg, cut to fit the type's
// MaxBytes with room for the envelope around it.
func (s *Swarm) errorEnvelope(msg string) Envelope {
	spec, _ := s.reg.Spec(TypeError)
	if limit := min(4096, spec.MaxBytes/2); len(msg) > limit {
		msg = strings.ToValidUTF8(msg[:limit], "")
	}
	e, _ := NewEnvelope(TypeError, 1, "", ErrorBody{Message: msg})
	e.Sender = s.PeerID()
	return e
}

// Request sends req to the peer over a fresh stream of protocolID and
// waits for the answer, until ctx ends or Config.RequestTimeout passes,
// whichever is first. The peer must be a member (its address comes from
// membership). A TypeError answer comes back as a *RemoteError. req must
// be a request type of the registry within its MaxBytes, and so must the
// answer be an answer type (errors wrap ErrUnknownType, ErrWrongKind,
// ErrTooLarge).
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
	if err := s.reg.Check(req.Type, KindRequest, len(b)); err != nil {
		return Envelope{}, fmt.Errorf("request %s: %w", protocolID, err)
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
	rb, err := readLimited(str, s.reg.MaxBytes(KindAnswer))
	if err != nil {
		_ = str.Reset()
		if errors.Is(err, ErrTooLarge) {
			s.refuse(RefusedTooLarge, pid, 0, time.Now(), "answer refused", "protocol", protocolID, "error", err)
		}
		return fail(err)
	}
	resp, err := s.dec.DecodeKind(rb, KindAnswer)
	if err == nil && resp.Sender != peerID {
		err = fmt.Errorf("%w: answer's sender %q is not the peer", errForgedSender, shortID(resp.Sender))
	}
	if err != nil {
		s.refuse(refusalReason(err), pid, 0, time.Now(), "answer refused", "protocol", protocolID, "error", err)
		return fail(err)
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
