package swarm

import (
	"context"
	"errors"
	"fmt"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// topicPrefix namespaces our topics so that they never meet another
// application's on a shared network.
const topicPrefix = "/loadswarm/1/"

// Topic is a GossipSub topic this node has joined: fleet-wide control or a
// per-test topic. Each call of Swarm.Topic returns its own handle; the node
// leaves the topic when the last handle is closed.
type Topic struct {
	s  *Swarm
	ts *topicState

	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

type topicState struct {
	name    string
	t       *pubsub.Topic
	handles map[*Topic]struct{}
}

// Message is an envelope received on a topic.
type Message struct {
	Envelope
	Local bool // published by this node: a subscriber receives its own messages
}

// Topic joins the named topic (e.g. "fleet" or "test/<id>/plan").
func (s *Swarm) Topic(name string) (*Topic, error) {
	if name == "" || len(name) > 200 {
		return nil, fmt.Errorf("topic %q: name must have 1 to 200 bytes", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	ts, ok := s.topics[name]
	if !ok {
		t, err := s.ps.Join(topicPrefix + name)
		if err != nil {
			return nil, fmt.Errorf("topic %q: %w", name, err)
		}
		ts = &topicState{name: name, t: t, handles: make(map[*Topic]struct{})}
		s.topics[name] = ts
	}
	h := &Topic{s: s, ts: ts, subs: make(map[*Subscription]struct{})}
	ts.handles[h] = struct{}{}
	return h, nil
}

// Name returns the topic's name as given to Swarm.Topic.
func (t *Topic) Name() string { return t.ts.name }

// Publish sends e to every subscriber of the topic, this node's included.
// It sets e.Sender to this node's peer id; receivers check it against the
// message's signature.
func (t *Topic) Publish(ctx context.Context, e Envelope) error {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return ErrClosed
	}
	e.Sender = t.s.PeerID()
	b, err := e.Marshal()
	if err != nil {
		return err
	}
	if len(b) > t.s.cfg.Limits.MaxBytes {
		return fmt.Errorf("publish on %q: %w: %d bytes, limit %d", t.ts.name, ErrTooLarge, len(b), t.s.cfg.Limits.MaxBytes)
	}
	if err := t.ts.t.Publish(ctx, b); err != nil {
		return fmt.Errorf("publish on %q: %w", t.ts.name, err)
	}
	return nil
}

// Publish encodes body into an envelope of type typ and publishes it on t.
func Publish[T any](ctx context.Context, t *Topic, typ Type, version uint16, testID string, body T) error {
	e, err := NewEnvelope(typ, version, testID, body)
	if err != nil {
		return err
	}
	return t.Publish(ctx, e)
}

// Peers returns the peer ids of the connected nodes subscribed to the topic.
// A message published before a peer shows here may not reach it.
func (t *Topic) Peers() []string {
	ps := t.ts.t.ListPeers()
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// Subscribe starts receiving the topic's messages of the given types (all
// types when none are given).
func (t *Topic) Subscribe(types ...Type) (*Subscription, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	ps, err := t.ts.t.Subscribe(pubsub.WithBufferSize(256))
	if err != nil {
		return nil, fmt.Errorf("subscribe to %q: %w", t.ts.name, err)
	}
	sub := &Subscription{t: t, sub: ps}
	if len(types) > 0 {
		sub.types = make(map[Type]bool, len(types))
		for _, ty := range types {
			sub.types[ty] = true
		}
	}
	t.subs[sub] = struct{}{}
	return sub, nil
}

// Close cancels the handle's subscriptions; the last handle's Close leaves
// the topic.
func (t *Topic) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	subs := t.subs
	t.subs = nil
	t.mu.Unlock()
	for sub := range subs {
		sub.sub.Cancel()
	}
	s := t.s
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(t.ts.handles, t)
	if len(t.ts.handles) > 0 || s.topics[t.ts.name] != t.ts {
		return nil
	}
	delete(s.topics, t.ts.name)
	if err := t.ts.t.Close(); err != nil && !s.closed {
		return fmt.Errorf("leave topic %q: %w", t.ts.name, err)
	}
	return nil
}

// Subscription receives a topic's messages.
type Subscription struct {
	t     *Topic
	sub   *pubsub.Subscription
	types map[Type]bool // nil: all
}

// Next waits for the next message of the subscribed types. It returns
// ErrClosed once the subscription, its topic or the swarm is closed, and
// ctx's error when ctx ends first. Envelopes that failed decoding never
// arrive here: the validator refused them.
func (sub *Subscription) Next(ctx context.Context) (Message, error) {
	for {
		m, err := sub.sub.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return Message{}, ctx.Err()
			}
			return Message{}, ErrClosed
		}
		env, ok := m.ValidatorData.(Envelope)
		if !ok {
			continue // not possible: every message goes through validate
		}
		if sub.types != nil && !sub.types[env.Type] {
			continue
		}
		return Message{Envelope: env, Local: m.GetFrom() == sub.t.s.host.ID()}, nil
	}
}

// Cancel stops the subscription.
func (sub *Subscription) Cancel() {
	sub.t.mu.Lock()
	delete(sub.t.subs, sub)
	sub.t.mu.Unlock()
	sub.sub.Cancel()
}

// Receive waits for the next message and decodes its body into a T. A body
// that does not decode is returned as an error; the subscription stays
// usable.
func Receive[T any](ctx context.Context, sub *Subscription) (Message, T, error) {
	var body T
	m, err := sub.Next(ctx)
	if err != nil {
		return Message{}, body, err
	}
	err = m.DecodeBody(&body)
	return m, body, err
}

// validate is GossipSub's validator for every topic: it decodes the
// envelope once, within the limits, and checks that its Sender is the peer
// that signed the message. Rejected messages are not delivered or
// forwarded, and count against the peer that sent them.
func (s *Swarm) validate(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	env, err := s.dec.Decode(msg.Data)
	if err != nil {
		s.rejected.Add(1)
		s.log.Debug("gossip message refused", "from", from.String(), "topic", msg.GetTopic(), "error", err)
		if errors.Is(err, ErrUnknownType) {
			return pubsub.ValidationIgnore // a newer node's type: not the forwarder's fault
		}
		return pubsub.ValidationReject
	}
	if env.Sender != msg.GetFrom().String() {
		s.rejected.Add(1)
		s.log.Warn("gossip message refused: sender does not match its signature", "sender", env.Sender, "signer", msg.GetFrom().String())
		return pubsub.ValidationReject
	}
	msg.ValidatorData = env
	return pubsub.ValidationAccept
}
