package scheduler

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"sort"
)

// score is the rendezvous (highest random weight) score of a node for a
// test: a hash of both, so every test gets its own order of nodes and a
// lost node moves only the tests it ranked first for.
func score(testID, nodeID string) uint64 {
	h := sha256.New()
	h.Write([]byte(testID))
	h.Write([]byte{0})
	h.Write([]byte(nodeID))
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// Rank orders node ids for a test, best first: the first is the test's
// scheduler, the next takes over if it dies. Ties (never in practice)
// break by id so that every node agrees. ids is not modified.
func Rank(testID string, ids []string) []string {
	type scored struct {
		id string
		s  uint64
	}
	l := make([]scored, len(ids))
	for i, id := range ids {
		l[i] = scored{id, score(testID, id)}
	}
	sort.Slice(l, func(a, b int) bool {
		if l[a].s != l[b].s {
			return l[a].s > l[b].s
		}
		return l[a].id < l[b].id
	})
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = s.id
	}
	return out
}

// RankFor is Rank for a test submitted by submitter, which ranks last
// whatever its score: the test id derives from what the submitter signed,
// so it could try contents until it ranked itself first and then plan its
// own test as it liked. It can still choose among the others by trying,
// which is why every node checks each plan against the test (CheckPlan).
func RankFor(testID, submitter string, ids []string) []string {
	r := Rank(testID, ids)
	if i := slices.Index(r, submitter); i >= 0 && i < len(r)-1 {
		r = append(append(r[:i:i], r[i+1:]...), submitter)
	}
	return r
}
