package storage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// openTestStore opens a store with small options in dir (a new temporary
// directory when dir is ""), changed by mod, and closes it when the test
// ends. Tests skip syncing unless they test durability: the data is on disk
// all the same, and survives kill -9 either way (TestReopenAfterKill).
func openTestStore(t testing.TB, dir string, mod func(*StoreConfig)) *Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := StoreConfig{Dir: dir, Small: true, NoSync: true}
	if mod != nil {
		mod(&cfg)
	}
	s, err := OpenStore(cfg)
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// markedSecond returns a small second whose Planned count is marker, so
// that a test can tell which write it reads back.
func markedSecond(t, marker int64) *Second {
	sec := NewSecond(t)
	d := Dim{Step: "home", Status: "2xx"}
	b := sec.Bucket(d)
	record(b, d, 25*time.Millisecond)
	b.Planned = marker
	return sec
}

// seededSecond returns the same second for the same t: even seconds are
// medium (15 dims, some KB: Badger's value log with small options), odd
// ones tiny (under 1 KiB: its write-ahead log).
func seededSecond(t int64) *Second {
	r := rand.New(rand.NewPCG(uint64(t), 7))
	sec := NewSecond(t)
	if t%2 == 1 {
		return markedSecond(t, t)
	}
	for _, step := range []string{"home", "login", "search", "cart", "checkout"} {
		for _, d := range []Dim{{step, "2xx", ""}, {step, "5xx", "http_5xx"}, {step, "", "timeout"}} {
			b := sec.Bucket(d)
			for range 20 + r.IntN(50) {
				record(b, d, lognormal(r, 40*time.Millisecond, 1))
			}
		}
	}
	return sec
}

func mustPutSecond(t testing.TB, s *Store, testID, origin string, sec *Second) {
	t.Helper()
	if err := s.PutSecond(testID, origin, sec); err != nil {
		t.Fatalf("PutSecond(%q, %q, %d): %v", testID, origin, sec.T, err)
	}
}

func mustSeries(t testing.TB, s *Store, testID, origin string, from, to int64) *Series {
	t.Helper()
	ser, err := s.Series(testID, origin, from, to)
	if err != nil {
		t.Fatalf("Series(%q, %q, %d, %d): %v", testID, origin, from, to, err)
	}
	return ser
}

// seriesTs lists the seconds of a series in order.
func seriesTs(s *Series) []int64 {
	var ts []int64
	for t := range s.Seconds {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}

func TestStoreConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  StoreConfig
		want []string // substrings of the error; none: valid
	}{
		{"dir", StoreConfig{Dir: "/x"}, nil},
		{"in memory", StoreConfig{InMemory: true}, nil},
		{"retention of one second", StoreConfig{Dir: "/x", Retention: time.Second}, nil},
		{"no dir", StoreConfig{}, []string{"dir is required"}},
		{"dir and in memory", StoreConfig{Dir: "/x", InMemory: true}, []string{"must be empty"}},
		{"negative retention", StoreConfig{Dir: "/x", Retention: -time.Hour}, []string{"negative"}},
		{"retention under a second", StoreConfig{Dir: "/x", Retention: 500 * time.Millisecond}, []string{"under 1s"}},
		{"a disk budget", StoreConfig{Dir: "/x", MaxBytes: 10 << 30, MinFreeBytes: 1 << 30, MaintenanceInterval: -1}, nil},
		{"negative budget", StoreConfig{Dir: "/x", MaxBytes: -1}, []string{"max bytes -1 is negative"}},
		{"budget in memory", StoreConfig{InMemory: true, MaxBytes: 1 << 30}, []string{"in-memory store has none"}},
		{"negative free floor", StoreConfig{Dir: "/x", MinFreeBytes: -1}, []string{"min free bytes -1 is negative"}},
		{"every problem at once", StoreConfig{Retention: -1, MaxBytes: -1}, []string{"dir is required", "retention -1ns is negative", "max bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate: no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %v; want it to mention %q", err, w)
				}
			}
			if _, err := OpenStore(tt.cfg); err == nil {
				t.Error("OpenStore accepted an invalid config")
			}
		})
	}
}

// TestKeyLayout writes seconds under ids that a naive "test/origin/T" key
// would confuse, and checks that each scan sees its own seconds only.
func TestKeyLayout(t *testing.T) {
	long := strings.Repeat("x", MaxIDLen)
	pairs := []struct{ test, origin string }{
		{"a", "n1"},
		{"a/b", "n1"},      // test "a/b" vs test "a"
		{"a", "b/n1"},      // naive key a/b/n1 = test "a/b" origin "n1"
		{"a/", "n1"},       // trailing separator
		{"a", "n1/"},       // in the origin too
		{"t1", "n"},        // t1 is a prefix of t10
		{"t10", "n"},       //
		{"t1", "n0"},       // n is a prefix of n0
		{"t1", "n\x00"},    // a NUL byte
		{"t1\x01n", "n"},   // looks like a length byte followed by an id
		{long, long},       // the longest ids
		{long[1:], "n"},    // one shorter
		{"ü/ß", "ünicode"}, // multibyte UTF-8
	}
	s := openTestStore(t, "", nil)
	ts := []int64{0, 1, 255, 256, 1 << 33}
	for i, p := range pairs {
		for _, T := range ts {
			mustPutSecond(t, s, p.test, p.origin, markedSecond(T, int64(1000*i)+T))
		}
	}
	origins := map[string][]string{}
	for _, p := range pairs {
		origins[p.test] = append(origins[p.test], p.origin)
	}
	for i, p := range pairs {
		t.Run(fmt.Sprintf("%q/%q", p.test, p.origin), func(t *testing.T) {
			ser := mustSeries(t, s, p.test, p.origin, 0, -1)
			if got := seriesTs(ser); !slices.Equal(got, ts) {
				t.Fatalf("seconds %v, want %v", got, ts)
			}
			for _, T := range ts {
				b := ser.Seconds[T].Buckets[Dim{Step: "home", Status: "2xx"}]
				if want := int64(1000*i) + T; b == nil || b.Planned != want {
					t.Errorf("second %d: read another pair's value (%+v), want marker %d", T, b, want)
				}
			}
			got, err := s.Origins(p.test)
			if err != nil {
				t.Fatal(err)
			}
			want := slices.Sorted(slices.Values(origins[p.test]))
			if !slices.Equal(got, want) {
				t.Errorf("Origins(%q) = %q, want %q", p.test, got, want)
			}
		})
	}
}

func TestSeriesRange(t *testing.T) {
	s := openTestStore(t, "", nil)
	stored := []int64{0, 1, 2, 3, 5, 8, 255, 256, 65536, 1 << 40, math.MaxInt64}
	for _, T := range stored {
		mustPutSecond(t, s, "t", "n", markedSecond(T, T))
	}
	mustPutSecond(t, s, "t", "m", markedSecond(4, 4)) // another origin, in the gap
	tests := []struct {
		name     string
		from, to int64
		want     []int64
	}{
		{"everything", 0, -1, stored},
		{"negative from counts from 0", -5, 2, []int64{0, 1, 2}},
		{"one second", 5, 5, []int64{5}},
		{"a gap", 4, 4, nil},
		{"edges are inclusive", 3, 8, []int64{3, 5, 8}},
		{"edges in a gap", 4, 7, []int64{5}},
		{"a byte boundary", 255, 256, []int64{255, 256}},
		{"to before from", 8, 3, nil},
		{"to = 0", 0, 0, []int64{0}},
		{"open end", 256, -1, []int64{256, 65536, 1 << 40, math.MaxInt64}},
		{"past the last", math.MaxInt64 - 1, math.MaxInt64 - 1, nil},
		{"the last", math.MaxInt64, math.MaxInt64, []int64{math.MaxInt64}},
		{"to = -7 is no bound too", 1 << 40, -7, []int64{1 << 40, math.MaxInt64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ser := mustSeries(t, s, "t", "n", tt.from, tt.to)
			if got := seriesTs(ser); !slices.Equal(got, tt.want) {
				t.Errorf("Series(%d, %d) = %v, want %v", tt.from, tt.to, got, tt.want)
			}
		})
	}
}

func fullRecord() TestRecord {
	return TestRecord{
		ID:        "01JTEST",
		Name:      "checkout spike",
		Spec:      []byte("name: checkout spike\nrate: 100\n"),
		Submitter: "key:ab12",
		State:     "running",
		Created:   time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC),
		Started:   time.Date(2026, 3, 1, 12, 0, 5, 0, time.FixedZone("CET", 3600)),
		Ended:     time.Date(2026, 3, 1, 12, 10, 5, 1, time.Local),
		Epoch:     7,
		Plan:      []byte{0xa1, 0x01, 0x02},
		Nodes:     []string{"node-a", "node-b/eu"},
		Reason:    "",
	}
}

// sameRecord fails the test unless a and b encode the same and have equal
// times.
func sameRecord(t *testing.T, got, want TestRecord) {
	t.Helper()
	eg, err1 := encodeTest(&got)
	ew, err2 := encodeTest(&want)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(eg, ew) || !got.Created.Equal(want.Created) || !got.Started.Equal(want.Started) || !got.Ended.Equal(want.Ended) {
		t.Errorf("record differs:\n got %+v\nwant %+v", got, want)
	}
}

func TestTestRecordRoundTrip(t *testing.T) {
	epoch := fullRecord()
	epoch.ID, epoch.Created = "epoch", time.Unix(0, 0) // 1970 is not the zero time
	huge := fullRecord()
	huge.ID, huge.Spec, huge.Plan = "huge", bytes.Repeat([]byte("y"), MaxSpecBytes), bytes.Repeat([]byte{1}, MaxPlanBytes)
	huge.Nodes = make([]string, 1000)
	for i := range huge.Nodes {
		huge.Nodes[i] = fmt.Sprintf("node-%04d", i)
	}
	failed := fullRecord()
	failed.ID, failed.State, failed.Reason = "a/b", "failed", "threshold p99 < 300ms failed: 412ms"
	tests := []struct {
		name string
		r    TestRecord
	}{
		{"full", fullRecord()},
		{"only an id", TestRecord{ID: "x"}},
		{"the Unix epoch", epoch},
		{"largest spec and plan", huge},
		{"failed, id with a slash", failed},
		{"unicode", TestRecord{ID: "tëst", Name: "über", Submitter: "ノード"}},
	}
	s := openTestStore(t, "", nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.PutTest(tt.r); err != nil {
				t.Fatalf("PutTest: %v", err)
			}
			got, ok, err := s.Test(tt.r.ID)
			if err != nil || !ok {
				t.Fatalf("Test = %v, %v", ok, err)
			}
			sameRecord(t, got, tt.r)
			if tt.r.Created.IsZero() != got.Created.IsZero() {
				t.Errorf("Created zero: got %v, want %v", got.Created.IsZero(), tt.r.Created.IsZero())
			}
		})
	}
	t.Run("replace", func(t *testing.T) {
		r := fullRecord()
		r.ID = "replaced"
		if err := s.PutTest(r); err != nil {
			t.Fatal(err)
		}
		r.State, r.Epoch, r.Nodes = "done", 9, nil
		if err := s.PutTest(r); err != nil {
			t.Fatal(err)
		}
		got, _, err := s.Test(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		sameRecord(t, got, r)
	})
	t.Run("missing", func(t *testing.T) {
		if _, ok, err := s.Test("nope"); ok || err != nil {
			t.Errorf("Test(missing) = %v, %v; want false, nil", ok, err)
		}
	})
}

func TestTestsOrder(t *testing.T) {
	s := openTestStore(t, "", nil)
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	recs := []TestRecord{
		{ID: "old", Created: base},
		{ID: "new", Created: base.Add(2 * time.Hour)},
		{ID: "mid-b", Created: base.Add(time.Hour)},
		{ID: "mid-a", Created: base.Add(time.Hour)}, // same time: by id
		{ID: "never-created"},                       // zero time: last
		{ID: "nanos", Created: base.Add(time.Hour + time.Nanosecond)},
	}
	for _, r := range recs {
		if err := s.PutTest(r); err != nil {
			t.Fatal(err)
		}
	}
	mustPutSecond(t, s, "old", "n", markedSecond(0, 1)) // results are not records
	got, err := s.Tests()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	want := []string{"new", "nanos", "mid-a", "mid-b", "old", "never-created"}
	if !slices.Equal(ids, want) {
		t.Errorf("Tests() order %q, want %q", ids, want)
	}
}

func TestStoreSecondRoundTrip(t *testing.T) {
	s := openTestStore(t, "", nil)
	r := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		sec  *Second
	}{
		{"empty", NewSecond(0)},
		{"tiny", markedSecond(1, 3)},
		{"realistic (15 dims, dense histograms)", realisticSecond(r, 2)},
		{"seeded", seededSecond(4)},
		{"nil bucket left out", &Second{T: 5, Buckets: map[Dim]*Bucket{{Step: "x"}: nil, {Step: "y"}: {Counters: Counters{Dropped: 2}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustPutSecond(t, s, "t", "n", tt.sec)
			got := mustSeries(t, s, "t", "n", tt.sec.T, tt.sec.T).Seconds[tt.sec.T]
			if got == nil {
				t.Fatal("second not found")
			}
			if !bytes.Equal(mustEncodeSecond(t, got), mustEncodeSecond(t, tt.sec)) {
				t.Error("second read back encodes differently")
			}
		})
	}
	t.Run("as bytes", func(t *testing.T) {
		want := mustEncodeSecond(t, seededSecond(6))
		if err := s.PutSecondBytes("t", "b", 6, want); err != nil {
			t.Fatal(err)
		}
		got := mustSeries(t, s, "t", "b", 6, 6).Seconds[6]
		if got == nil || !bytes.Equal(mustEncodeSecond(t, got), want) {
			t.Error("second stored as bytes reads back otherwise")
		}
	})
	t.Run("replaced, not merged", func(t *testing.T) {
		mustPutSecond(t, s, "t", "m", markedSecond(3, 10))
		mustPutSecond(t, s, "t", "m", markedSecond(3, 20))
		b := mustSeries(t, s, "t", "m", 3, 3).Seconds[3].Buckets[Dim{Step: "home", Status: "2xx"}]
		if b.Planned != 20 || b.Requests != 1 {
			t.Errorf("second 3: planned %d requests %d; want the second write alone (20, 1)", b.Planned, b.Requests)
		}
	})
	t.Run("batch", func(t *testing.T) {
		// More seconds than one transaction of the small options holds
		// (about 6,500 entries), so that PutSeconds splits the batch.
		if n := s.db.MaxBatchCount(); n >= 10000 {
			t.Fatalf("a transaction holds %d entries: the batch would not be split", n)
		}
		secs := make([]*Second, 10000)
		for i := range secs {
			secs[i] = markedSecond(int64(i), int64(i))
		}
		secs = append(secs, markedSecond(7, 77)) // the later of two T=7 wins
		if err := s.PutSeconds("batch", "n", secs); err != nil {
			t.Fatalf("PutSeconds: %v", err)
		}
		ser := mustSeries(t, s, "batch", "n", 0, -1)
		if len(ser.Seconds) != 10000 {
			t.Fatalf("%d seconds, want 10000", len(ser.Seconds))
		}
		for T, sec := range ser.Seconds {
			want := T
			if T == 7 {
				want = 77
			}
			if got := sec.Buckets[Dim{Step: "home", Status: "2xx"}].Planned; got != want {
				t.Fatalf("second %d: marker %d, want %d", T, got, want)
			}
		}
	})
}

func TestSamples(t *testing.T) {
	s := openTestStore(t, "", nil)
	put := func(origin string, samples map[string][]string) {
		t.Helper()
		if err := s.PutSamples("t", origin, samples); err != nil {
			t.Fatalf("PutSamples: %v", err)
		}
	}
	put("n", map[string][]string{"timeout": {"c", "a"}})
	put("n", map[string][]string{"timeout": {"a", "b", "g", "f", "e", "d"}, "reset": {"conn reset"}})
	put("n", nil) // nothing to add
	put("only-samples", map[string][]string{"dns": {"no such host"}})
	mustPutSecond(t, s, "t", "n", markedSecond(0, 1))

	ser := mustSeries(t, s, "t", "n", 0, -1)
	want := map[string][]string{"timeout": {"a", "b", "c", "d", "e"}, "reset": {"conn reset"}}
	if fmt.Sprint(ser.Samples) != fmt.Sprint(want) {
		t.Errorf("samples %q, want %q", ser.Samples, want)
	}
	if len(ser.Seconds) != 1 {
		t.Errorf("%d seconds, want 1", len(ser.Seconds))
	}
	origins, err := s.Origins("t")
	if err != nil || !slices.Equal(origins, []string{"n", "only-samples"}) {
		t.Errorf("Origins = %q, %v; want [n only-samples]", origins, err)
	}

	t.Run("concurrent writers", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Go(func() {
				errs <- s.PutSamples("c", "n", map[string][]string{fmt.Sprintf("class%d", i): {"m"}})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := mustSeries(t, s, "c", "n", 0, -1).Samples; len(got) != 8 {
			t.Errorf("%d classes after 8 concurrent writers, want 8: %q", len(got), got)
		}
	})
}

func TestDeleteTest(t *testing.T) {
	s := openTestStore(t, "", nil)
	for _, id := range []string{"t1", "t10", "t1/x"} {
		if err := s.PutTest(TestRecord{ID: id, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
		for _, origin := range []string{"a", "b"} {
			for T := range int64(50) {
				mustPutSecond(t, s, id, origin, seededSecond(T))
			}
			if err := s.PutSamples(id, origin, map[string][]string{"timeout": {"x"}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.DeleteTest("t1"); err != nil {
		t.Fatalf("DeleteTest: %v", err)
	}
	if _, ok, err := s.Test("t1"); ok || err != nil {
		t.Errorf("Test(t1) after delete = %v, %v", ok, err)
	}
	if o, err := s.Origins("t1"); len(o) != 0 || err != nil {
		t.Errorf("Origins(t1) after delete = %q, %v", o, err)
	}
	if ser := mustSeries(t, s, "t1", "a", 0, -1); len(ser.Seconds) != 0 || len(ser.Samples) != 0 {
		t.Errorf("Series(t1) after delete: %d seconds, %d sample classes", len(ser.Seconds), len(ser.Samples))
	}
	// No key of t1 is left, of any kind.
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			for _, p := range [][]byte{testKey("t1"), testResultsPrefix(kindSecond, "t1"), testResultsPrefix(kindSamples, "t1")} {
				if bytes.HasPrefix(k, p) {
					t.Errorf("key %x of t1 left", k)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"t10", "t1/x"} {
		if _, ok, err := s.Test(id); !ok || err != nil {
			t.Errorf("Test(%s) = %v, %v; its neighbour's deletion removed it", id, ok, err)
		}
		if ser := mustSeries(t, s, id, "b", 0, -1); len(ser.Seconds) != 50 || len(ser.Samples) != 1 {
			t.Errorf("Series(%s): %d seconds, %d sample classes; want 50, 1", id, len(ser.Seconds), len(ser.Samples))
		}
	}
	if err := s.DeleteTest("never-was"); err != nil {
		t.Errorf("DeleteTest(missing) = %v", err)
	}
}

// TestEveryValueHasTTL checks that every key written has an expiry at the
// retention.
func TestEveryValueHasTTL(t *testing.T) {
	const retention = 48 * time.Hour
	s := openTestStore(t, "", func(c *StoreConfig) { c.Retention = retention })
	before := time.Now()
	if err := s.PutTest(fullRecord()); err != nil {
		t.Fatal(err)
	}
	mustPutSecond(t, s, "t", "n", seededSecond(0))
	if err := s.PutSeconds("t", "n", []*Second{seededSecond(1), seededSecond(2)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSamples("t", "n", map[string][]string{"x": {"y"}}); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
			exp := int64(it.Item().ExpiresAt())
			if lo, hi := before.Add(retention).Unix()-1, after.Add(retention).Unix()+1; exp < lo || exp > hi {
				t.Errorf("key %x expires at %d, want in [%d, %d]", it.Item().Key(), exp, lo, hi)
			}
		}
		return nil
	})
	if err != nil || n != 5 {
		t.Errorf("%d keys (%v), want 5", n, err)
	}
	if d, err := OpenStore(StoreConfig{InMemory: true, Small: true}); err != nil || d.retention != DefaultRetention {
		t.Errorf("default retention: %v, %v", d.retention, err)
	} else {
		d.Close()
	}
}

func TestTTL(t *testing.T) {
	// Badger's TTL counts whole seconds: a value written with 2 s expires
	// 1 to 2 s later, so it is still there when read back at once.
	s := openTestStore(t, "", func(c *StoreConfig) { c.Retention = 2 * time.Second })
	if err := s.PutTest(TestRecord{ID: "t", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	mustPutSecond(t, s, "t", "n", seededSecond(0)) // value log (small options)
	mustPutSecond(t, s, "t", "n", seededSecond(1)) // write-ahead log
	if err := s.PutSamples("t", "n", map[string][]string{"x": {"y"}}); err != nil {
		t.Fatal(err)
	}
	count := func() (records, seconds, samples, origins int) {
		t.Helper()
		recs, err := s.Tests()
		if err != nil {
			t.Fatal(err)
		}
		ser := mustSeries(t, s, "t", "n", 0, -1)
		o, err := s.Origins("t")
		if err != nil {
			t.Fatal(err)
		}
		return len(recs), len(ser.Seconds), len(ser.Samples), len(o)
	}
	if r, sec, smp, o := count(); r != 1 || sec != 2 || smp != 1 || o != 1 {
		t.Fatalf("just written: %d records, %d seconds, %d sample classes, %d origins; want 1, 2, 1, 1", r, sec, smp, o)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		r, sec, smp, o := count()
		if r+sec+smp+o == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 15 s: %d records, %d seconds, %d sample classes, %d origins left", r, sec, smp, o)
		}
		time.Sleep(100 * time.Millisecond) // poll
	}
	if _, ok, err := s.Test("t"); ok || err != nil {
		t.Errorf("Test after expiry = %v, %v", ok, err)
	}
	if err := s.CollectGarbage(); err != nil {
		t.Errorf("CollectGarbage: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	s := openTestStore(t, "", nil)
	long := strings.Repeat("i", MaxIDLen+1)
	maxID := strings.Repeat("i", MaxIDLen)
	rec := func(mod func(*TestRecord)) TestRecord {
		r := fullRecord()
		mod(&r)
		return r
	}
	tests := []struct {
		name string
		call func() error
		want string // substring of the error; "" for none
	}{
		{"longest ids", func() error { return s.PutSecond(maxID, maxID, markedSecond(0, 1)) }, ""},
		{"empty test id", func() error { return s.PutSecond("", "n", markedSecond(0, 1)) }, "empty test id"},
		{"empty origin", func() error { return s.PutSecond("t", "", markedSecond(0, 1)) }, "empty origin id"},
		{"oversized test id", func() error { return s.PutSecond(long, "n", markedSecond(0, 1)) }, "is 129 bytes, over the limit of 128"},
		{"oversized origin", func() error { return s.PutSecond("t", long, markedSecond(0, 1)) }, "origin id"},
		{"invalid UTF-8 id", func() error { return s.PutSecond("t\xff", "n", markedSecond(0, 1)) }, "not valid UTF-8"},
		{"nil second", func() error { return s.PutSecond("t", "n", nil) }, "nil second"},
		{"negative T", func() error { return s.PutSecond("t", "n", markedSecond(-1, 1)) }, "negative T"},
		{"negative counter", func() error {
			sec := markedSecond(0, 1)
			sec.Buckets[Dim{Step: "home", Status: "2xx"}].Errors = -1
			return s.PutSecond("t", "n", sec)
		}, "negative errors count"},
		{"nil in a batch", func() error { return s.PutSeconds("t", "n", []*Second{markedSecond(0, 1), nil}) }, "[1]"},
		{"bad id in a batch", func() error { return s.PutSeconds("t", "", []*Second{markedSecond(0, 1)}) }, "empty origin id"},
		{"empty batch", func() error { return s.PutSeconds("t", "n", nil) }, ""},
		{"bytes of another second", func() error { return s.PutSecondBytes("t", "n", 4, mustEncodeSecond(t, markedSecond(5, 1))) }, "put second 4 of test \"t\" origin \"n\": holds second 5"},
		{"garbage bytes", func() error { return s.PutSecondBytes("t", "n", 4, []byte("\xff\x00")) }, "put second 4"},
		{"no bytes", func() error { return s.PutSecondBytes("t", "n", 4, nil) }, "put second 4"},
		{"bytes under a bad id", func() error { return s.PutSecondBytes("t", "", 0, mustEncodeSecond(t, markedSecond(0, 1))) }, "empty origin id"},
		{"spec at the limit", func() error {
			return s.PutTest(rec(func(r *TestRecord) { r.Spec = make([]byte, MaxSpecBytes) }))
		}, ""},
		{"spec over 1 MiB", func() error {
			return s.PutTest(rec(func(r *TestRecord) { r.Spec = make([]byte, MaxSpecBytes+1) }))
		}, "spec is 1048577 bytes, over the limit of 1048576"},
		{"plan over 4 MiB", func() error {
			return s.PutTest(rec(func(r *TestRecord) { r.Plan = make([]byte, MaxPlanBytes+1) }))
		}, "plan is"},
		{"record without id", func() error { return s.PutTest(rec(func(r *TestRecord) { r.ID = "" })) }, "empty test id"},
		{"bad node id", func() error {
			return s.PutTest(rec(func(r *TestRecord) { r.Nodes = []string{"a", ""} }))
		}, "nodes[1]: empty node id"},
		{"invalid UTF-8 name", func() error { return s.PutTest(rec(func(r *TestRecord) { r.Name = "\xc3" })) }, "name is not valid UTF-8"},
		{"long reason", func() error {
			return s.PutTest(rec(func(r *TestRecord) { r.Reason = strings.Repeat("r", MaxReasonLen+1) }))
		}, "reason is"},
		{"time out of range", func() error {
			return s.PutTest(rec(func(r *TestRecord) { r.Ended = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) }))
		}, "ended time"},
		{"every problem at once", func() error {
			return s.PutTest(rec(func(r *TestRecord) { r.Name, r.Spec = "\xff", make([]byte, MaxSpecBytes+1) }))
		}, "name is not valid UTF-8\nspec is"},
		{"Test with a bad id", func() error { _, _, err := s.Test(long); return err }, "over the limit"},
		{"Series with a bad id", func() error { _, err := s.Series("t", "", 0, -1); return err }, "empty origin id"},
		{"Origins with a bad id", func() error { _, err := s.Origins(""); return err }, "empty test id"},
		{"PutSamples with a bad id", func() error { return s.PutSamples("", "n", nil) }, "empty test id"},
		{"DeleteTest with a bad id", func() error { return s.DeleteTest(long) }, "over the limit"},
		{"samples are clipped, not refused", func() error {
			return s.PutSamples("t", "n", map[string][]string{strings.Repeat("c", 1000): {strings.Repeat("\xff", 1000)}})
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tt.want != "" && err == nil:
				t.Errorf("no error, want one with %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
	// Nothing refused was written.
	if o, err := s.Origins("t"); err != nil || !slices.Equal(o, []string{"n"}) {
		t.Errorf("Origins(t) = %q, %v; want [n] (the samples only)", o, err)
	}
	if ser := mustSeries(t, s, "t", "n", 0, -1); len(ser.Seconds) != 0 {
		t.Errorf("%d refused seconds were written", len(ser.Seconds))
	}
}

func TestClosed(t *testing.T) {
	s := openTestStore(t, "", nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"Close":          s.Close,
		"PutTest":        func() error { return s.PutTest(fullRecord()) },
		"Test":           func() error { _, _, err := s.Test("t"); return err },
		"Tests":          func() error { _, err := s.Tests(); return err },
		"PutSecond":      func() error { return s.PutSecond("t", "n", markedSecond(0, 1)) },
		"PutSeconds":     func() error { return s.PutSeconds("t", "n", nil) },
		"PutSecondBytes": func() error { return s.PutSecondBytes("t", "n", 0, nil) },
		"Series":         func() error { _, err := s.Series("t", "n", 0, -1); return err },
		"Origins":        func() error { _, err := s.Origins("t"); return err },
		"PutSamples":     func() error { return s.PutSamples("t", "n", nil) },
		"DeleteTest":     func() error { return s.DeleteTest("t") },
		"CollectGarbage": s.CollectGarbage,
		"Maintain":       s.Maintain,
		"Room":           s.Room,
		"Usage":          func() error { _, err := s.Usage(); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

// TestBadgerLogger checks that Badger's warnings and errors reach the slog
// logger and its chatter does not.
func TestBadgerLogger(t *testing.T) {
	var buf bytes.Buffer
	l := badgerLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l.Errorf("disk %s\n", "full")
	l.Warningf("slow %d", 3)
	l.Infof("chatter")
	l.Debugf("chatter")
	got := buf.String()
	for _, want := range []string{`level=ERROR msg="disk full" component=badger`, `level=WARN msg="slow 3" component=badger`} {
		if !strings.Contains(got, want) {
			t.Errorf("log %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "chatter") {
		t.Errorf("log %q has info or debug lines", got)
	}
	// A store with a logger opens and logs nothing at warning level.
	buf.Reset()
	openTestStore(t, "", func(c *StoreConfig) { c.Logger = l.l })
	if buf.Len() != 0 {
		t.Errorf("opening logged %q", buf.String())
	}
}

// TestCorruptValues writes bad bytes under valid keys, with Badger itself,
// and checks that reads fail with an error naming what is wrong.
func TestCorruptValues(t *testing.T) {
	enc5 := mustEncodeSecond(t, markedSecond(5, 1))
	recX, err := encodeTest(&TestRecord{ID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	series := func(s *Store) error { _, err := s.Series("t", "n", 0, -1); return err }
	test := func(s *Store) error { _, _, err := s.Test("t"); return err }
	tests := []struct {
		name       string
		key, value []byte
		call       func(*Store) error
		want       string
	}{
		{"garbage second", secondKey("t", "n", 3), []byte("\xff\x00garbage"), series, "corrupt second 3"},
		{"empty second", secondKey("t", "n", 3), nil, series, "corrupt second 3"},
		{"CBOR null second", secondKey("t", "n", 3), []byte{0xf6}, series, "corrupt second 3: second: null"},
		{"second under another T", secondKey("t", "n", 4), enc5, series, "corrupt second 4: holds second 5"},
		{"truncated second", secondKey("t", "n", 5), enc5[:len(enc5)-3], series, "corrupt second 5"},
		{"short key under an origin", append(originPrefix(kindSecond, "t", "n"), 1, 2, 3), enc5, series, "not a second key"},
		{"key of a second past MaxInt64", append(originPrefix(kindSecond, "t", "n"), 0xff, 0, 0, 0, 0, 0, 0, 0), enc5, series, "out of range"},
		{"garbage samples", originPrefix(kindSamples, "t", "n"), []byte{0x83, 0x01}, series, "corrupt samples"},
		{"samples with seconds", originPrefix(kindSamples, "t", "n"), mustEncodeSeries(t, &Series{Seconds: map[int64]*Second{5: markedSecond(5, 1)}}), series, "holds seconds"},
		{"samples read to add to", originPrefix(kindSamples, "t", "n"), []byte("zz"), func(s *Store) error {
			return s.PutSamples("t", "n", map[string][]string{"a": {"b"}})
		}, "corrupt samples"},
		{"garbage record", testKey("t"), []byte("\x1f"), test, "corrupt record"},
		{"record of another test", testKey("t"), recX, test, `corrupt record: holds test "x"`},
		{"record over its limits", testKey("t"), func() []byte {
			b, _ := encMode.Marshal(wireTest{ID: "t", Spec: make([]byte, MaxSpecBytes+1)})
			return b
		}(), test, "spec is"},
		{"garbage record in a listing", testKey("t"), []byte("\x1f"), func(s *Store) error { _, err := s.Tests(); return err }, `test "t": corrupt record`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTestStore(t, "", nil)
			err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(tt.key, tt.value) })
			if err != nil {
				t.Fatal(err)
			}
			err = tt.call(s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one with %q", err, tt.want)
			}
		})
	}
}

// The crash test runs this test binary again as a child that writes to a
// store and is then killed with SIGKILL.
const (
	crashDirEnv  = "LOADSWARM_STORE_CRASH_DIR"
	crashModeEnv = "LOADSWARM_STORE_CRASH_MODE" // "all N" or "forever"
	crashSyncEnv = "LOADSWARM_STORE_CRASH_SYNC" // "1": SyncWrites
)

// TestCrashChild is the child of TestReopenAfterKill; it is skipped unless
// run by it. It writes a record and seconds 0, 1, 2, ... with PutSecond,
// one transaction each. In mode "all N" it writes N seconds, prints
// "written" and waits to be killed; in mode "forever" it prints "wrote T"
// after each second returns, until killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the child of TestReopenAfterKill")
	}
	s, err := OpenStore(StoreConfig{Dir: dir, Small: true, NoSync: os.Getenv(crashSyncEnv) != "1"})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	if err := s.PutTest(TestRecord{ID: "crash", State: "running", Created: time.Unix(1e9, 0)}); err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	mode := os.Getenv(crashModeEnv)
	n := int64(math.MaxInt64)
	if rest, ok := strings.CutPrefix(mode, "all "); ok {
		if n, err = strconv.ParseInt(rest, 10, 64); err != nil {
			fmt.Println("error:", err)
			os.Exit(3)
		}
	}
	for T := int64(0); T < n; T++ {
		if err := s.PutSecond("crash", "self", seededSecond(T)); err != nil {
			fmt.Println("error:", err)
			os.Exit(3)
		}
		if mode == "forever" {
			fmt.Printf("wrote %d\n", T)
		}
	}
	fmt.Println("written")
	time.Sleep(time.Hour) // until killed; never Close
	os.Exit(4)
}

func TestReopenAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	tests := []struct {
		name string
		sync bool
		mode string
	}{
		{"SyncWrites false, killed after 300 seconds", false, "all 300"},
		{"SyncWrites true, killed after 300 seconds", true, "all 300"},
		{"SyncWrites false, killed while writing", false, "forever"},
		{"SyncWrites true, killed while writing", true, "forever"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashModeEnv+"="+tt.mode, crashSyncEnv+"="+map[bool]string{true: "1"}[tt.sync])
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := make(chan string)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
			// Kill after "written", or after 200 seconds written in mode
			// "forever", then read what the child printed before it died.
			last := int64(-1)
			deadline := time.After(2 * time.Minute)
		wait:
			for {
				select {
				case line, ok := <-lines:
					if !ok {
						t.Fatal("child exited before it was killed")
					}
					if strings.HasPrefix(line, "error:") {
						t.Fatalf("child: %s", line)
					}
					if v, ok := strings.CutPrefix(line, "wrote "); ok {
						last, _ = strconv.ParseInt(v, 10, 64)
					}
					if line == "written" || last >= 200 {
						break wait
					}
				case <-deadline:
					cmd.Process.Kill()
					t.Fatal("child did not finish writing in 2 minutes")
				}
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			for line := range lines {
				if v, ok := strings.CutPrefix(line, "wrote "); ok {
					last, _ = strconv.ParseInt(v, 10, 64)
				}
			}
			err = cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child ended with %v, want killed by SIGKILL", err)
			}

			s := openTestStore(t, dir, nil)
			if _, ok, err := s.Test("crash"); !ok || err != nil {
				t.Errorf("record after kill: %v, %v", ok, err)
			}
			ser := mustSeries(t, s, "crash", "self", 0, -1)
			ts := seriesTs(ser)
			if len(ts) == 0 || ts[len(ts)-1] != int64(len(ts)-1) {
				t.Fatalf("seconds after kill are not 0..n-1: %v", ts)
			}
			got := int64(len(ts))
			switch {
			case tt.mode == "all 300" && got != 300:
				t.Errorf("%d seconds after kill, want all 300", got)
			case tt.mode == "forever" && (got < last+1 || got > last+2):
				// Every second reported written is there; the one being
				// written when the kill came may be there or not.
				t.Errorf("%d seconds after kill; the child reported 0..%d written", got, last)
			}
			for _, T := range ts {
				if !bytes.Equal(mustEncodeSecond(t, ser.Seconds[T]), mustEncodeSecond(t, seededSecond(T))) {
					t.Fatalf("second %d differs after kill", T)
				}
			}
			if tt.mode == "forever" {
				t.Logf("%d seconds read back; the child reported 0..%d written", got, last)
			}
		})
	}
}

// BenchmarkStorePutSecond stores a realistic second (15 dims, a few
// thousand requests each) per op, one transaction each, with and without
// SyncWrites. Compare with BenchmarkEncodeSecond: encoding is most of it.
func BenchmarkStorePutSecond(b *testing.B) {
	sec := realisticSecond(rand.New(rand.NewPCG(1, 2)), 0)
	enc := mustEncodeSecond(b, sec)
	for _, bc := range []struct {
		name        string
		small, sync bool
	}{
		{"default/sync", false, true},
		{"default/nosync", false, false},
		{"small/sync", true, true},
		{"small/nosync", true, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := openTestStore(b, "", func(c *StoreConfig) { c.Small, c.NoSync = bc.small, !bc.sync })
			b.ReportAllocs()
			b.SetBytes(int64(len(enc)))
			T := int64(0)
			for b.Loop() {
				sec.T = T
				if err := s.PutSecond("bench", "self", sec); err != nil {
					b.Fatal(err)
				}
				T++
			}
			b.ReportMetric(float64(len(enc)), "encoded-bytes")
		})
	}
}

// BenchmarkStoreSeries reads one origin's 600 seconds × 15 dims (a
// 10-minute test) per op. Compare with 600 × BenchmarkDecodeSecond: the
// decoding is nearly all of it.
func BenchmarkStoreSeries(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	pool := make([]*Second, 4)
	for i := range pool {
		pool[i] = realisticSecond(r, 0)
	}
	for _, small := range []bool{false, true} {
		b.Run(map[bool]string{false: "default", true: "small"}[small], func(b *testing.B) {
			s := openTestStore(b, "", func(c *StoreConfig) { c.Small = small })
			secs := make([]*Second, 600)
			size := 0
			for t := range secs {
				secs[t] = pool[t%len(pool)].Clone()
				secs[t].T = int64(t)
				size += len(mustEncodeSecond(b, secs[t]))
			}
			if err := s.PutSeconds("bench", "self", secs); err != nil {
				b.Fatal(err)
			}
			if err := s.PutSeconds("bench", "other", secs[:60]); err != nil { // a neighbour not read
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				ser, err := s.Series("bench", "self", 0, -1)
				if err != nil || len(ser.Seconds) != 600 {
					b.Fatalf("Series: %d seconds, %v", len(ser.Seconds), err)
				}
			}
			b.ReportMetric(float64(size), "encoded-bytes")
		})
	}
}

// ExampleOpenStore keeps a node's own second and a replica of another
// node's, and reads them back per origin.
func ExampleOpenStore() {
	s, err := OpenStore(StoreConfig{InMemory: true, Small: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	login := Dim{Step: "login", Status: "2xx"}
	sec := NewSecond(0)
	sec.Bucket(login).Planned = 100
	_ = s.PutSecond("test-1", "node-a", sec) // our own
	sec.Bucket(login).Planned = 90
	_ = s.PutSecond("test-1", "node-b", sec) // a replica of node-b's
	origins, _ := s.Origins("test-1")
	for _, o := range origins {
		ser, _ := s.Series("test-1", o, 0, -1)
		fmt.Println(o, ser.Seconds[0].Buckets[login].Planned)
	}
	// Output:
	// node-a 100
	// node-b 90
}
