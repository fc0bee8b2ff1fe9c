package swarm_test

import (
	"errors"
	"fmt"

	"github.com/loadswarm/loadswarm/swarm"
)

// An application's wire registry: every message type it sends, how it
// travels, how large it may be, and for gossip how often each sender may
// publish it. It goes in Config.Types.
func ExampleNewRegistry() {
	const (
		typePlan   swarm.Type = 20
		typeQuery  swarm.Type = 40
		typeAnswer swarm.Type = 41
	)
	types := map[swarm.Type]swarm.TypeSpec{
		typePlan:   {Name: "plan", Kind: swarm.KindGossip, MaxBytes: 1 << 20, RatePerSec: 20, Burst: 50},
		typeQuery:  {Name: "query", Kind: swarm.KindRequest, MaxBytes: 64 << 10},
		typeAnswer: {Name: "query-result", Kind: swarm.KindAnswer, MaxBytes: 64 << 20},
	}
	reg, err := swarm.NewRegistry(types)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("gossip read up to", reg.MaxBytes(swarm.KindGossip))
	fmt.Println("answers read up to", reg.MaxBytes(swarm.KindAnswer))
	fmt.Println(errors.Is(reg.Check(typeQuery, swarm.KindGossip, 100), swarm.ErrWrongKind))
	// Output:
	// gossip read up to 1048576
	// answers read up to 67108864
	// true
}

// A signature that travels with the data it signs: any node checks it
// with the signer's peer id alone. The data starts with its domain, so
// that it proves nothing for another purpose.
func ExampleVerifySignature() {
	id, _ := swarm.GenerateIdentity()
	data := append([]byte("loadswarm/announce/1\x00"), "the test, as submitted"...)
	sig, _ := id.Sign(data)
	fmt.Println(swarm.VerifySignature(id.PeerID(), data, sig))

	other := append([]byte("loadswarm/stop/1\x00"), "the test, as submitted"...)
	fmt.Println(errors.Is(swarm.VerifySignature(id.PeerID(), other, sig), swarm.ErrBadSignature))
	// Output:
	// <nil>
	// true
}
