package swarm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

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
// message's signature. It refuses, as every receiver would, a type that is
// not a gossip type of the registry (ErrUnknownType, ErrWrongKind), an
// envelope over its type's MaxBytes (ErrTooLarge), and one over this
// node's rate for the type (ErrRateLimited).
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
	if err := t.s.reg.Check(e.Type, KindGossip, len(b)); err != nil {
		return fmt.Errorf("publish on %q: %w", t.ts.name, err)
	}
	// Receivers would ignore what exceeds the rate: say so here instead.
	// The validator does not charge this node's own messages again.
	if !t.s.lim.take(t.s.host.ID(), e.Type, time.Now()) {
		spec, _ := t.s.reg.Spec(e.Type)
		return fmt.Errorf("publish %s on %q: %w: more than %v/s (burst %d)", spec.Name, t.ts.name, ErrRateLimited, spec.RatePerSec, spec.Burst)
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
// types when none are given). Each type must be a gossip type of the
// registry: no other could arrive.
func (t *Topic) Subscribe(types ...Type) (*Subscription, error) {
	for _, ty := range types {
		if err := t.s.reg.Check(ty, KindGossip, 0); err != nil {
			return nil, fmt.Errorf("subscribe to %q: %w", t.ts.name, err)
		}
	}
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
			continue // a raw message of our own (tests) that is no envelope
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

// ErrRateLimited is returned (wrapped) by Publish when this node's
// messages of a type exceed the type's RatePerSec and Burst: every
// receiver would ignore them.
var ErrRateLimited = errors.New("over the rate limit")

// validate is GossipSub's validator for every topic, run inline on every
// node for every message before it is delivered or forwarded. It decodes
// the envelope once (ValidatorData), and refuses a message that is
// malformed, of a type the registry lacks or that is not a gossip type,
// larger than its type allows, whose Sender is not the peer that signed
// it, or whose signer is over its rate for the type.
//
// Reject or Ignore: both keep the message from delivery and forwarding;
// Reject also says that the peer that handed it over misbehaved. An honest
// node validates before it forwards, with the same checks, so a message
// that no version or config of this code accepts (not CBOR or not an
// envelope, forged sender, a type used the wrong way: type numbers never
// change kind) reaches us only from its author or a hostile forwarder:
// Reject. A message that another version or config may accept (a newer
// type, a larger size limit, deeper nesting or longer arrays than our
// Limits) or that was fine where it came from (a rate is each node's own
// view of time) may come through an honest forwarder: Ignore.
//
// Topic scores are off (see newPubSub), so today the two differ only in
// what GossipSub traces. What cuts a peer off is the penalty charged
// either way to the signer, whose id the signature proves (much smaller
// for the Ignore cases): above graylistPenalty, GossipSub drops all it
// sends.
func (s *Swarm) validate(_ context.Context, src peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if src == s.host.ID() {
		// Our own message: Publish checked it and charged the rate. (Only
		// tests publish raw bytes, to play a hostile node.)
		if env, err := s.dec.Decode(msg.Data); err == nil {
			msg.ValidatorData = env
		}
		return pubsub.ValidationAccept
	}
	author := msg.GetFrom()
	now := time.Now()
	env, err := s.dec.decode(msg.Data, KindGossip)
	if env.Type != 0 && !errors.Is(err, ErrWrongKind) && !s.lim.take(author, env.Type, now) {
		// Charged before the size check: oversized messages count too.
		spec, _ := s.reg.Spec(env.Type)
		err = fmt.Errorf("%w: %s over %v/s (burst %d)", ErrRateLimited, spec.Name, spec.RatePerSec, spec.Burst)
	}
	if err == nil && env.Sender != author.String() {
		err = fmt.Errorf("%w: sender %s, signed by %s", errForgedSender, shortID(env.Sender), shortID(author.String()))
	}
	if err == nil {
		msg.ValidatorData = env
		return pubsub.ValidationAccept
	}
	reason := refusalReason(err)
	certain := (reason == RefusedMalformed && !errors.Is(err, errOverLimits)) ||
		reason == RefusedForgedSender || reason == RefusedWrongKind
	penalty := penaltyMaybe
	if certain {
		penalty = penaltyCertain
	}
	attrs := []any{"topic", msg.GetTopic(), "via", shortID(src.String()), "error", err}
	if env.Type != 0 {
		attrs = append(attrs, "type", s.reg.Name(env.Type))
	}
	s.refuse(reason, author, penalty, now, "gossip message refused", attrs...)
	if certain {
		return pubsub.ValidationReject
	}
	return pubsub.ValidationIgnore
}
