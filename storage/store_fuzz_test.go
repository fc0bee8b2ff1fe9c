package storage

import (
	"bytes"
	"testing"
	"time"
)

// Run one with, e.g.,
//
//	go test ./storage/ -run '^$' -fuzz FuzzDecodeTestRecord -fuzztime 20s

// FuzzDecodeTestRecord checks that decodeTest never panics, and that
// whatever decodes encodes again to bytes that decode to the same record.
func FuzzDecodeTestRecord(f *testing.F) {
	for _, r := range []TestRecord{fullRecord(), {ID: "x"}, {ID: "t", Created: time.Unix(0, 0), Nodes: []string{"a"}}} {
		b, err := encodeTest(&r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xf6})
	f.Add([]byte{0xa1, 0x01, 0x60})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeTest(data)
		if err != nil {
			return
		}
		b, err := encodeTest(&r)
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		r2, err := decodeTest(b)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		b2, err := encodeTest(&r2)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("encoding is not stable: %v", err)
		}
	})
}

// FuzzResultKeys checks the key schema: a (test, origin) prefix covers the
// keys of that pair only, a test's prefix the keys of that test only, and
// keys parse back to their parts. parseResultKey must never panic.
func FuzzResultKeys(f *testing.F) {
	f.Add("a", "b/c", "a/b", "c", uint64(0), uint64(1))
	f.Add("t1", "n", "t10", "n", uint64(255), uint64(256))
	f.Add("x", "\x01x", "x\x01", "x", uint64(1<<62), uint64(7))
	f.Fuzz(func(t *testing.T, t1, o1, t2, o2 string, u1, u2 uint64) {
		if checkIDs(t1, o1) != nil || checkIDs(t2, o2) != nil {
			return
		}
		T1, T2 := int64(u1>>1), int64(u2>>1)
		k1, k2 := secondKey(t1, o1, T1), secondKey(t2, o2, T2)
		samePair := t1 == t2 && o1 == o2
		if got := bytes.HasPrefix(k2, originPrefix(kindSecond, t1, o1)); got != samePair {
			t.Errorf("prefix of (%q, %q) covers key of (%q, %q): %v", t1, o1, t2, o2, got)
		}
		if got := bytes.HasPrefix(k2, testResultsPrefix(kindSecond, t1)); got != (t1 == t2) {
			t.Errorf("prefix of test %q covers key of test %q: %v", t1, t2, got)
		}
		if bytes.Equal(k1, k2) != (samePair && T1 == T2) {
			t.Errorf("keys of (%q, %q, %d) and (%q, %q, %d) collide", t1, o1, T1, t2, o2, T2)
		}
		if samePair && (T1 < T2) != (bytes.Compare(k1, k2) < 0) {
			t.Errorf("seconds %d and %d do not sort in order", T1, T2)
		}
		kind, tid, origin, T, err := parseResultKey(k1)
		if err != nil || kind != kindSecond || tid != t1 || origin != o1 || T != T1 {
			t.Errorf("parseResultKey(%x) = %c %q %q %d %v", k1, kind, tid, origin, T, err)
		}
		kind, tid, origin, T, err = parseResultKey(originPrefix(kindSamples, t1, o1))
		if err != nil || kind != kindSamples || tid != t1 || origin != o1 || T != -1 {
			t.Errorf("parseResultKey(samples of %q %q) = %c %q %q %d %v", t1, o1, kind, tid, origin, T, err)
		}
		parseResultKey([]byte(t1 + o1 + t2)) // any bytes: no panic
	})
}
