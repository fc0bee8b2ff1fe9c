package scheduler

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/loadswarm/loadswarm/scenarios"
)

// Member is a node as the split sees it.
type Member struct {
	ID   string
	Info scenarios.NodeInfo // Capacity is the most arrivals per second it takes
}

// Share is one node's part of a test: its own arrival profile (the same
// breakpoints as the test's) and its own seed, so that Poisson arrivals on
// different nodes are independent. It is what a split makes and what a
// plan carries.
type Share struct {
	Node     string              `cbor:"1,keyasint"`
	Region   string              `cbor:"2,keyasint,omitempty"`
	Segments []scenarios.Segment `cbor:"3,keyasint"`
	Seed     uint64              `cbor:"4,keyasint"`
}

// Profile returns the share as a profile the executor runs.
func (s Share) Profile() scenarios.Profile { return scenarios.NewProfile(s.Segments) }

// Peak is the share's highest rate.
func (s Share) Peak() float64 {
	var m float64
	for _, g := range s.Segments {
		m = math.Max(m, math.Max(g.From, g.To))
	}
	return m
}

// Split is the outcome of splitting a test over the fleet.
type Split struct {
	Shares []Share // one per node that takes part, sorted by node id
	// Unit is the granularity of the shares, in arrivals per second: 1 when
	// every rate of the test is a whole number, else 0.001.
	Unit float64
	// Excluded says why each member left out takes no part.
	Excluded map[string]string
}

// ErrInfeasible is returned (wrapped, with the numbers) by SplitRate when
// the selected nodes cannot carry the test's rate.
var ErrInfeasible = errors.New("the fleet cannot carry this test")

// SplitRate splits a test's profile over members following the rules in d
// (nil: every member, weighted by capacity). It is a pure function.
//
// At every breakpoint of the profile the node rates are whole multiples of
// Unit and add up exactly to the test's rate (largest remainder); between
// breakpoints rates are linear, so the sum stays exact at every instant.
// No node gets more than its capacity; what a capped node cannot take goes
// to the others (in its region, when the rules set region shares). When the
// selected nodes cannot carry the rate, the error says by how much.
func SplitRate(p scenarios.Profile, members []Member, d *scenarios.Distribution, seed uint64) (*Split, error) {
	segs := p.Segments()
	out := &Split{Unit: unitFor(segs), Excluded: map[string]string{}}
	nodes, err := eligible(members, d, out.Excluded)
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%w: no node takes part (%s)", ErrInfeasible, reasons(out.Excluded))
	}
	var regions map[string]float64
	if d != nil && len(d.Spec.Regions) > 0 {
		regions = d.Spec.Regions
		byRegion := map[string]bool{}
		for _, n := range nodes {
			byRegion[n.region] = true
		}
		for r := range regions {
			if !byRegion[r] {
				return nil, fmt.Errorf("%w: region %q has a share of %g but no node there takes part", ErrInfeasible, r, regions[r])
			}
		}
		kept := nodes[:0]
		for _, n := range nodes {
			if _, ok := regions[n.region]; ok {
				kept = append(kept, n)
			} else {
				out.Excluded[n.id] = fmt.Sprintf("region %q has no share in distribution.regions", n.region)
			}
		}
		nodes = kept
	}
	sort.Slice(nodes, func(a, b int) bool { return nodes[a].id < nodes[b].id })

	cache := map[int64][]int64{}
	alloc := func(rate float64) ([]int64, error) {
		u := int64(math.Round(rate / out.Unit))
		if a, ok := cache[u]; ok {
			return a, nil
		}
		a, err := allocate(u, nodes, regions, out.Unit)
		if err != nil {
			return nil, fmt.Errorf("at %s/s: %w", fmtRate(rate), err)
		}
		cache[u] = a
		return a, nil
	}
	perNode := make([][]scenarios.Segment, len(nodes))
	for _, g := range segs {
		from, err := alloc(g.From)
		if err != nil {
			return nil, err
		}
		to, err := alloc(g.To)
		if err != nil {
			return nil, err
		}
		for i := range nodes {
			perNode[i] = append(perNode[i], scenarios.Segment{Start: g.Start, Dur: g.Dur,
				From: float64(from[i]) * out.Unit, To: float64(to[i]) * out.Unit})
		}
	}
	for i, n := range nodes {
		sh := Share{Node: n.id, Region: n.region, Segments: perNode[i], Seed: nodeSeed(seed, n.id)}
		if sh.Peak() == 0 {
			out.Excluded[n.id] = "its share rounds to 0"
			continue
		}
		out.Shares = append(out.Shares, sh)
	}
	return out, nil
}

type node struct {
	id     string
	region string
	weight float64
	cap    float64 // arrivals per second
}

func eligible(members []Member, d *scenarios.Distribution, excluded map[string]string) ([]node, error) {
	var out []node
	seen := map[string]bool{}
	for _, m := range members {
		if seen[m.ID] {
			return nil, fmt.Errorf("node %q listed twice", m.ID)
		}
		seen[m.ID] = true
		if !(m.Info.Capacity > 0) {
			excluded[m.ID] = "capacity 0"
			continue
		}
		ok, err := d.Select(m.Info)
		if err != nil {
			return nil, err
		}
		if !ok {
			excluded[m.ID] = "not selected by distribution.select"
			continue
		}
		w, err := d.Weight(m.Info)
		if err != nil {
			return nil, err
		}
		if w == 0 {
			excluded[m.ID] = "weight 0"
			continue
		}
		out = append(out, node{id: m.ID, region: m.Info.Region, weight: w, cap: m.Info.Capacity})
	}
	return out, nil
}

// allocate splits u units over nodes (index-aligned result).
func allocate(u int64, nodes []node, regions map[string]float64, unit float64) ([]int64, error) {
	out := make([]int64, len(nodes))
	if u == 0 {
		return out, nil
	}
	if regions == nil {
		idx := make([]int, len(nodes))
		for i := range idx {
			idx[i] = i
		}
		return out, fill(out, u, nodes, idx, unit, "")
	}
	names := make([]string, 0, len(regions))
	for r := range regions {
		names = append(names, r)
	}
	sort.Strings(names)
	shares := make([]float64, len(names))
	for i, r := range names {
		shares[i] = regions[r]
	}
	perRegion := largestRemainder(u, shares)
	for i, r := range names {
		var idx []int
		for j, n := range nodes {
			if n.region == r {
				idx = append(idx, j)
			}
		}
		if err := fill(out, perRegion[i], nodes, idx, unit, r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fill splits u units over nodes[idx] by weight, capped (water filling),
// then rounds by largest remainder; it writes into out.
func fill(out []int64, u int64, nodes []node, idx []int, unit float64, region string) error {
	caps := make([]int64, len(idx))
	var capSum int64
	for k, i := range idx {
		caps[k] = int64(math.Floor(nodes[i].cap/unit + 1e-9))
		capSum += caps[k]
	}
	if capSum < u {
		where := "the selected nodes"
		if region != "" {
			where = fmt.Sprintf("region %q's nodes", region)
		}
		return fmt.Errorf("%w: %s need %s/s but %s can carry %s/s", ErrInfeasible,
			scope(region), fmtRate(float64(u)*unit), where, fmtRate(float64(capSum)*unit))
	}
	ideal := make([]float64, len(idx))
	fixed := make([]bool, len(idx))
	remaining := float64(u)
	for {
		var w float64
		for k, i := range idx {
			if !fixed[k] {
				w += nodes[i].weight
			}
		}
		over := false
		for k, i := range idx {
			if fixed[k] {
				continue
			}
			ideal[k] = remaining * nodes[i].weight / w
			if ideal[k] > float64(caps[k]) {
				over = true
			}
		}
		if !over {
			break
		}
		for k := range idx {
			if !fixed[k] && ideal[k] > float64(caps[k]) {
				fixed[k] = true
				ideal[k] = float64(caps[k])
				remaining -= float64(caps[k])
			}
		}
	}
	// Largest remainder: floors first, then one more unit to the largest
	// fractional parts (ties by node order) until the total is exact.
	var sum int64
	type frac struct {
		k int
		f float64
	}
	fr := make([]frac, 0, len(idx))
	for k, i := range idx {
		fl := int64(math.Floor(ideal[k] + 1e-9))
		fl = min(fl, caps[k])
		out[i] = fl
		sum += fl
		if fl < caps[k] {
			fr = append(fr, frac{k, ideal[k] - float64(fl)})
		}
	}
	sort.SliceStable(fr, func(a, b int) bool { return fr[a].f > fr[b].f })
	for j := 0; sum < u; j++ {
		if j == len(fr) {
			return fmt.Errorf("internal: cannot round %d units over %d nodes", u, len(idx))
		}
		out[idx[fr[j].k]]++
		sum++
	}
	return nil
}

func scope(region string) string {
	if region == "" {
		return "the test's arrivals"
	}
	return "the region's share"
}

// largestRemainder splits u into integers proportional to weights.
func largestRemainder(u int64, weights []float64) []int64 {
	var total float64
	for _, w := range weights {
		total += w
	}
	out := make([]int64, len(weights))
	type frac struct {
		i int
		f float64
	}
	fr := make([]frac, len(weights))
	var sum int64
	for i, w := range weights {
		x := float64(u) * w / total
		out[i] = int64(math.Floor(x + 1e-9))
		sum += out[i]
		fr[i] = frac{i, x - float64(out[i])}
	}
	sort.SliceStable(fr, func(a, b int) bool { return fr[a].f > fr[b].f })
	for j := 0; sum < u; j++ {
		out[fr[j%len(fr)].i]++
		sum++
	}
	return out
}

// unitFor is 1 arrival/s when every rate is whole, else 0.001.
func unitFor(segs []scenarios.Segment) float64 {
	for _, g := range segs {
		if g.From != math.Trunc(g.From) || g.To != math.Trunc(g.To) {
			return 0.001
		}
	}
	return 1
}

func nodeSeed(seed uint64, id string) uint64 {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	h := sha256.Sum256(append(b[:], id...))
	return binary.BigEndian.Uint64(h[:8]) | 1 // never 0, which means "random"
}

func reasons(m map[string]string) string {
	var l []string
	for k, v := range m {
		l = append(l, k+": "+v)
	}
	sort.Strings(l)
	if len(l) > 5 {
		l = append(l[:5], fmt.Sprintf("and %d more", len(l)-5))
	}
	return strings.Join(l, "; ")
}

func fmtRate(r float64) string {
	if r == math.Trunc(r) {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%.3f", r)
}
