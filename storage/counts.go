package storage

import (
	"math"
	"slices"
	"sync"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// counts is a sparse histogram of our parameters: its non-zero counts by
// ascending flat index (indexOf). Each takes 4 bytes (a 2-byte index and a
// 2-byte count) while the total fits in 16 bits, and so every count does,
// as in one node's second of one dim; past that, 10 bytes (an 8-byte
// count). The decoder appends to it and a merge adds two sorted lists in
// one pass: that is most of a query's work, which the library's sparse
// histogram does value by value.
type counts struct {
	idx   []uint16
	small []uint16 // the counts while the total is at most maxSmall, else nil
	wide  []int64  // the counts otherwise, else nil
	total int64
}

const maxSmall = math.MaxUint16

func (c *counts) at(i int) int64 {
	if c.wide != nil {
		return c.wide[i]
	}
	return int64(c.small[i])
}

// fit switches to 8-byte counts before the total grows by n past maxSmall.
// The caller has checked that the total stays within an int64.
func (c *counts) fit(n int64) {
	if c.wide != nil || c.total+n <= maxSmall {
		return
	}
	c.wide = make([]int64, len(c.small), cap(c.small))
	for i, v := range c.small {
		c.wide[i] = int64(v)
	}
	c.small = nil
}

// push appends a count n > 0 at an index above all of c's.
func (c *counts) push(idx int32, n int64) {
	c.fit(n)
	c.idx = append(c.idx, uint16(idx))
	if c.wide != nil {
		c.wide = append(c.wide, n)
	} else {
		c.small = append(c.small, uint16(n))
	}
	c.total += n
}

// add adds n > 0 at idx, inserting the index if it is new.
func (c *counts) add(idx int32, n int64) {
	c.fit(n)
	i, found := slices.BinarySearch(c.idx, uint16(idx))
	if !found {
		c.idx = slices.Insert(c.idx, i, uint16(idx))
		if c.wide != nil {
			c.wide = slices.Insert(c.wide, i, 0)
		} else {
			c.small = slices.Insert(c.small, i, 0)
		}
	}
	if c.wide != nil {
		c.wide[i] += n
	} else {
		c.small[i] += uint16(n)
	}
	c.total += n
}

// merge adds o's counts to c. The caller has checked that the total stays
// within an int64; c and o do not share arrays (c's change in place).
func (c *counts) merge(o *counts) {
	c.fit(o.total) // c is now wide if o is
	switch {
	case c.wide == nil:
		c.idx, c.small = mergeSorted(c.idx, c.small, o.idx, o.small)
	case o.wide == nil:
		c.idx, c.wide = mergeSorted(c.idx, c.wide, o.idx, o.small)
	default:
		c.idx, c.wide = mergeSorted(c.idx, c.wide, o.idx, o.wide)
	}
	c.total += o.total
}

// mergeSorted returns the counts of a and b together, by index, in a's
// arrays (grown as append grows them if b has indexes that a lacks).
func mergeSorted[A, B uint16 | int64](ai []uint16, an []A, bi []uint16, bn []B) ([]uint16, []A) {
	// Add b's counts in place while a has their indexes: when merging
	// nodes' seconds, mostly to the end.
	i, j := 0, 0
	for ; j < len(bi); j++ {
		for i < len(ai) && ai[i] < bi[j] {
			i++
		}
		if i == len(ai) || ai[i] != bi[j] {
			break
		}
		an[i] += A(bn[j])
	}
	if j == len(bi) {
		return ai, an
	}
	// Merge the rest of b from the end, so that each entry of a moves
	// before it is overwritten.
	added := 0
	for x, y := i, j; y < len(bi); {
		switch {
		case x < len(ai) && ai[x] < bi[y]:
			x++
		case x < len(ai) && ai[x] == bi[y]:
			x, y = x+1, y+1
		default:
			added, y = added+1, y+1
		}
	}
	n := len(ai)
	ai, an = slices.Grow(ai, added)[:n+added], slices.Grow(an, added)[:n+added]
	x, y := n-1, len(bi)-1
	for k := n + added - 1; y >= j; k-- {
		switch {
		case x >= i && ai[x] > bi[y]:
			ai[k], an[k] = ai[x], an[x]
			x--
		case x >= i && ai[x] == bi[y]:
			ai[k], an[k] = ai[x], an[x]+A(bn[y])
			x, y = x-1, y-1
		default:
			ai[k], an[k] = bi[y], A(bn[y])
			y--
		}
	}
	return ai, an
}

func (c *counts) clone() *counts {
	return &counts{idx: slices.Clone(c.idx), small: slices.Clone(c.small), wide: slices.Clone(c.wide), total: c.total}
}

func (c *counts) reset() {
	*c = counts{idx: c.idx[:0], small: c.small[:0]}
}

// scratch holds library sparse histograms for countsOfDense: the library
// lists a dense histogram's counts only through Export, which copies all
// 139 KB of them, or by merging them into one of these.
var scratch = sync.Pool{New: func() any { return hdr.NewPacked(HistLowestMicros, HistHighestMicros, HistSigFigs) }}

// countsOfDense returns the counts of a dense histogram of our parameters.
func countsOfDense(d *hdr.Histogram) *counts {
	p := scratch.Get().(*hdr.PackedHistogram)
	defer scratch.Put(p)
	p.Reset()
	p.MergeFrom(d) // drops nothing: same parameters, same total
	n := int(p.Populated())
	c := &counts{idx: make([]uint16, 0, n), small: make([]uint16, 0, n)}
	if d.TotalCount() > maxSmall {
		c.small, c.wide = nil, make([]int64, 0, n)
	}
	for v, k := range p.ForEachBucket {
		c.push(indexOf(v), k)
	}
	return c
}

// mergeInto adds c's counts to a dense histogram of our parameters and
// returns the total it could not hold (none, when the caller has checked
// that the total fits).
func (c *counts) mergeInto(d *hdr.Histogram) (dropped int64) {
	for i, idx := range c.idx {
		n := c.at(i)
		if d.RecordValues(valueOf(int32(idx)), n) != nil {
			dropped += n
		}
	}
	return dropped
}

// packed returns c as the library's sparse histogram, for quantiles and
// the like: its answers are the library's, as before counts existed.
func (c *counts) packed() *hdr.PackedHistogram {
	p := hdr.NewPacked(HistLowestMicros, HistHighestMicros, HistSigFigs)
	for i, idx := range c.idx {
		_ = p.RecordValues(valueOf(int32(idx)), c.at(i)) // in range, and the total fits
	}
	return p
}

// denseLen is the number of counts of a dense histogram of ours: the slots
// up to maxIndex's bucket end.
const denseLen = (17191>>subBucketHalfCountMag + 1) << subBucketHalfCountMag // maxIndex is 17191

// tally adds up histograms for a summary. Sparse ones are added count by
// count into a plain array, several times faster than into the library's
// histogram, which is made from the array once, for the numbers.
type tally struct {
	dense  *hdr.Histogram // the dense histograms merged, or nil
	counts *[]int64       // the sparse ones' counts by index (from tallies), or nil
	total  int64
}

var tallies = sync.Pool{New: func() any { c := make([]int64, denseLen); return &c }}

// add adds h as Histogram.Merge would, or not at all where it fails (other
// parameters, a total past an int64), which nothing this package makes or
// decodes meets in a test.
func (t *tally) add(h *Histogram) {
	if h == nil || h.Count() == 0 || h.params() != ourParams || h.Count() > math.MaxInt64-t.total {
		return
	}
	t.total += h.Count()
	if h.dense != nil {
		if t.dense == nil {
			t.dense = hdr.New(HistLowestMicros, HistHighestMicros, HistSigFigs)
		}
		t.dense.Merge(h.dense)
		return
	}
	if t.counts == nil {
		t.counts = tallies.Get().(*[]int64)
	}
	c := *t.counts
	for i, idx := range h.sparse.idx {
		c[idx] += h.sparse.at(i)
	}
}

// histogram returns what t added up (nil if nothing) and gives its array
// back.
func (t *tally) histogram() *Histogram {
	if t.counts != nil {
		s := hdr.Import(&hdr.Snapshot{LowestTrackableValue: HistLowestMicros, HighestTrackableValue: HistHighestMicros,
			SignificantFigures: HistSigFigs, Counts: *t.counts})
		clear(*t.counts)
		tallies.Put(t.counts)
		t.counts = nil
		if t.dense == nil {
			t.dense = s
		} else {
			t.dense.Merge(s)
		}
	}
	if t.dense == nil {
		return nil
	}
	return &Histogram{dense: t.dense}
}
