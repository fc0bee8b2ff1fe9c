package scheduler

import (
	"crypto/sha256"
	"encoding/binary"
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
