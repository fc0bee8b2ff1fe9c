package swarm

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

type statsV1 struct {
	Second int64  `cbor:"1,keyasint"`
	Count  uint64 `cbor:"2,keyasint"`
}

// statsV2 is what a newer node might send: one more field.
type statsV2 struct {
	Second  int64  `cbor:"1,keyasint"`
	Count   uint64 `cbor:"2,keyasint"`
	Dropped uint64 `cbor:"3,keyasint"`
}

func TestEnvelopeRoundTrip(t *testing.T) {
	e, err := NewEnvelope(tGossip, 1, "test-1", statsV1{Second: 42, Count: 7})
	if err != nil {
		t.Fatal(err)
	}
	e.Sender = "12D3KooWexample"
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := testDecoder(t).Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Type != tGossip || got.Version != 1 || got.TestID != "test-1" || got.Sender != e.Sender {
		t.Fatalf("header: got %+v", got)
	}
	var body statsV1
	if err := got.DecodeBody(&body); err != nil {
		t.Fatal(err)
	}
	if body != (statsV1{42, 7}) {
		t.Fatalf("body: got %+v", body)
	}
}

func TestEnvelopeIgnoresNewerFields(t *testing.T) {
	// A newer envelope: field 6 does not exist in this version, and the
	// body has a field the older struct lacks.
	body, _ := cbor.Marshal(statsV2{Second: 1, Count: 2, Dropped: 3})
	b, err := cbor.Marshal(map[int]any{1: uint16(tGossip), 2: 2, 3: "peer", 5: cbor.RawMessage(body), 6: "future"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := testDecoder(t).Decode(b)
	if err != nil {
		t.Fatalf("newer envelope refused: %v", err)
	}
	var v1 statsV1
	if err := e.DecodeBody(&v1); err != nil {
		t.Fatalf("newer body refused: %v", err)
	}
	if v1 != (statsV1{1, 2}) {
		t.Fatalf("got %+v", v1)
	}
}

func TestDecodeRefuses(t *testing.T) {
	valid, _ := Envelope{Type: TypePing, Sender: "p"}.Marshal()
	nested := func(depth int) []byte {
		// depth nested one-element arrays around 0, inside the body.
		body := bytes.Repeat([]byte{0x81}, depth)
		body = append(body, 0x00)
		b, _ := cbor.Marshal(map[int]any{1: 1, 5: cbor.RawMessage(body)})
		return b
	}
	bigArray := func(n int) []byte {
		arr := make([]int, n)
		b, _ := cbor.Marshal(map[int]any{1: 1, 5: arr})
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"not cbor", []byte("hello, world"), ErrMalformed},
		{"truncated", valid[:len(valid)-1], ErrMalformed},
		{"trailing bytes", append(append([]byte{}, valid...), 0x00), ErrMalformed},
		{"not a map", []byte{0x83, 0x01, 0x02, 0x03}, ErrMalformed},
		{"no type", mustCBOR(t, map[int]any{3: "p"}), ErrMalformed},
		{"unknown type", mustCBOR(t, map[int]any{1: 999}), ErrUnknownType},
		{"type out of range", mustCBOR(t, map[int]any{1: 70000}), ErrMalformed},
		{"wrong field type", mustCBOR(t, map[int]any{1: "ping"}), ErrMalformed},
		{"duplicate key", []byte{0xa2, 0x01, 0x01, 0x01, 0x01}, ErrMalformed},
		{"too deep", nested(20), ErrMalformed},
		{"array too long", bigArray(70000), ErrMalformed},
		{"huge declared length", []byte{0xa1, 0x05, 0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ErrMalformed},
		{"tag", []byte{0xa1, 0x01, 0xc1, 0x01}, ErrMalformed},
		{"too large", make([]byte, 1<<20+1), ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeEnvelope(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// Just inside the limits is fine.
	if _, err := DecodeEnvelope(nested(14)); err != nil {
		t.Fatalf("depth 14: %v", err)
	}
}

func TestMarshalRefusesNoType(t *testing.T) {
	if _, err := (Envelope{}).Marshal(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v", err)
	}
}

func TestLimitsValidate(t *testing.T) {
	err := Limits{MaxBytes: 10, MaxDepth: 2, MaxArrayLength: 1, MaxMapPairs: 1}.Validate()
	for _, want := range []string{"MaxBytes", "MaxDepth", "MaxArrayLength", "MaxMapPairs"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
	if err := (Limits{}).Validate(); err != nil {
		t.Fatalf("zero limits take defaults: %v", err)
	}
}

func mustCBOR(t *testing.T, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzDecodeEnvelope: the decoders never panic; what they accept is a
// type of their registry of the kind asked for, within its size; and it
// re-encodes to an envelope that decodes to the same thing. The body is
// only checked to be well-formed CBOR within the limits: decoding it may
// still fail (e.g. invalid UTF-8 in a text string), but must not panic.
// It covers the decoder of the built-ins and one of an application
// registry.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, e := range []Envelope{
		{Type: TypePing},
		{Type: tGossip, Version: 3, Sender: "12D3KooW", TestID: "t1", Body: mustMarshal(statsV2{1, 2, 3})},
		{Type: TypeError, Body: mustMarshal(ErrorBody{Message: "boom"})},
		{Type: tGossip, Sender: "12D3KooW", Body: mustMarshal("hello")},
		{Type: tAnswer, Body: mustMarshal(statsV1{1, 2})},
	} {
		b, err := e.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xa1, 0x05, 0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xa1, 0x01, 0x9f, 0x9f, 0x9f, 0xff, 0xff, 0xff})
	f.Add(bytes.Repeat([]byte{0x81}, 100))
	builtins, err := NewDecoder(Limits{MaxBytes: 1 << 16})
	if err != nil {
		f.Fatal(err)
	}
	app := testDecoder(f)
	kinds := []Kind{allKinds, KindGossip, KindRequest, KindAnswer}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, dec := range []*Decoder{builtins, app} {
			for _, k := range kinds {
				fuzzDecodeOnce(t, dec, k, b)
			}
		}
	})
}

func fuzzDecodeOnce(t *testing.T, dec *Decoder, k Kind, b []byte) {
	e, err := dec.DecodeKind(b, k)
	if err != nil {
		return
	}
	if err := dec.Registry().Check(e.Type, k, len(b)); err != nil {
		t.Fatalf("accepted as %s: %v", k, err)
	}
	var anyBody any
	if len(e.Body) > 0 {
		_ = e.DecodeBody(&anyBody)
	}
	b2, err := e.Marshal()
	if err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	e2, err := dec.Decode(b2)
	if err != nil {
		t.Fatalf("re-decode: %v", err)
	}
	if e2.Type != e.Type || e2.Version != e.Version || e2.Sender != e.Sender || e2.TestID != e.TestID || !bytes.Equal(e2.Body, e.Body) {
		t.Fatalf("round trip changed the envelope: %+v -> %+v", e, e2)
	}
}

func mustMarshal(v any) []byte {
	b, err := encMode.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
