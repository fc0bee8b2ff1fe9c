package storage

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

const mib = 1 << 20

// bigSecond is a realistic second as decoded: its histograms are sparse,
// which encodes in well under a millisecond (a dense one takes about 8).
var bigSecond = sync.OnceValue(func() *Second {
	b, err := EncodeSecond(realisticSecond(rand.New(rand.NewPCG(5, 6)), 0))
	if err != nil {
		panic(err)
	}
	sec, err := DecodeSecond(b)
	if err != nil {
		panic(err)
	}
	return sec
})

// bigSeconds returns n seconds from T = first on, each a copy of one
// realistic second: about 57 KB encoded, so Badger's value log holds them.
func bigSeconds(first int64, n int) []*Second {
	one := bigSecond()
	out := make([]*Second, n)
	for i := range out {
		out[i] = one.Clone()
		out[i].T = first + int64(i)
	}
	return out
}

// putTestData stores a record and n big seconds of origin "a" for id.
func putTestData(t *testing.T, s *Store, rec TestRecord, n int) {
	t.Helper()
	if err := s.PutTest(rec); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSeconds(rec.ID, "a", bigSeconds(0, n)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSamples(rec.ID, "a", map[string][]string{"timeout": {"x"}}); err != nil {
		t.Fatal(err)
	}
}

// physicalKeys counts the keys of a test on disk in every version,
// deleted and expired ones included.
func physicalKeys(t *testing.T, s *Store, id string) int {
	t.Helper()
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{AllVersions: true})
		defer it.Close()
		for _, p := range testPrefixes(id) {
			for it.Seek(p); it.ValidForPrefix(p); it.Next() {
				n++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// liveSeconds counts the seconds of origin "a" of a test that a read
// would see, without decoding them.
func liveSeconds(t *testing.T, s *Store, id string) int {
	t.Helper()
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		p := originPrefix(kindSecond, id, "a")
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
		defer it.Close()
		for it.Seek(p); it.ValidForPrefix(p); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mustUsage(t *testing.T, s *Store) int64 {
	t.Helper()
	u, err := s.Usage()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// smallFiles makes a store test-sized: value-log files of 1 MiB (Badger's
// minimum), so that a few MB of results fill several and GC, which never
// touches the newest file, has files to work on; and no loop: the test
// runs Maintain.
func smallFiles(c *StoreConfig) {
	c.MaintenanceInterval = -1
	c.hooks.valueLogFileSize = 1 << 20
}

// TestMaintainReclaimsSpace removes a test of about 5.7 MB of results, by
// DeleteTest or by retention, and checks that Maintain gives the space
// back while another test stays whole.
func TestMaintainReclaimsSpace(t *testing.T) {
	tests := []struct {
		name   string
		remove func(t *testing.T, s *Store)
	}{
		{"deleted", func(t *testing.T, s *Store) {
			if err := s.DeleteTest("old"); err != nil {
				t.Fatal(err)
			}
		}},
		{"expired", func(t *testing.T, s *Store) {
			// "old" was written with a retention of 1 s: wait until every
			// key of it is gone from view (its record, its seconds, its
			// origin index; on a busy machine the last written expire a
			// moment after the first).
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, ok, err := s.Test("old")
				if err != nil {
					t.Fatal(err)
				}
				origins, err := s.Origins("old")
				if err != nil {
					t.Fatal(err)
				}
				if !ok && len(origins) == 0 && len(mustSeries(t, s, "old", "a", 0, -1).Seconds) == 0 {
					return
				}
				if time.Now().After(deadline) {
					t.Fatal("old test still readable 10 s after it expired")
				}
				time.Sleep(50 * time.Millisecond) // poll
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTestStore(t, "", smallFiles)
			if tt.name == "expired" {
				s.retention = time.Second // for "old" only; the loop is off, nothing else runs
			}
			putTestData(t, s, TestRecord{ID: "old", State: "done", Created: time.Now()}, 100)
			s.retention = DefaultRetention
			putTestData(t, s, TestRecord{ID: "keep", State: "done", Created: time.Now()}, 10)
			oldBytes := 100 * len(mustEncodeSecond(t, bigSeconds(0, 1)[0]))

			before := mustUsage(t, s)
			tt.remove(t, s)
			removed := mustUsage(t, s)
			if err := s.Maintain(); err != nil {
				t.Fatalf("Maintain: %v", err)
			}
			after := mustUsage(t, s)
			t.Logf("old test %s encoded; store %s before, %s once %s, %s after Maintain",
				formatBytes(int64(oldBytes)), formatBytes(before), formatBytes(removed), tt.name, formatBytes(after))
			if freed := before - after; freed < int64(oldBytes)*3/4 {
				t.Errorf("Maintain freed %s of the old test's %s", formatBytes(freed), formatBytes(int64(oldBytes)))
			}
			if n := physicalKeys(t, s, "old"); n != 0 {
				t.Errorf("%d keys of the old test left on disk", n)
			}
			if _, ok, err := s.Test("keep"); !ok || err != nil {
				t.Errorf("Test(keep) = %v, %v", ok, err)
			}
			if ser := mustSeries(t, s, "keep", "a", 0, -1); len(ser.Seconds) != 10 || len(ser.Samples) != 1 {
				t.Errorf("keep: %d seconds, %d sample classes; want 10, 1", len(ser.Seconds), len(ser.Samples))
			}
			if o, err := s.Origins("old"); len(o) != 0 || err != nil {
				t.Errorf("Origins(old) = %q, %v", o, err)
			}
			// A second pass has nothing to do.
			if err := s.Maintain(); err != nil {
				t.Fatalf("second Maintain: %v", err)
			}
			if again := mustUsage(t, s); again > after+mib {
				t.Errorf("second pass grew the store from %s to %s", formatBytes(after), formatBytes(again))
			}
		})
	}
}

// TestDropMarkers checks what a crash between a drop's markers and the
// drop leaves: reads that ignore them, and a record that says why it is
// there, until the markers expire.
func TestDropMarkers(t *testing.T) {
	s := openTestStore(t, "", smallFiles)
	mustPutSecond(t, s, "t", "n", markedSecond(0, 1))
	err := s.db.Update(func(txn *badger.Txn) error {
		rec, err := encodeTest(&TestRecord{ID: "gone", State: "expired", Reason: "being removed by retention"})
		if err != nil {
			return err
		}
		return errors.Join(
			txn.SetEntry(badger.NewEntry(testKey("gone"), rec).WithTTL(markerTTL)),
			txn.SetEntry(badger.NewEntry(testResultsPrefix(kindSecond, "gone"), nil).WithTTL(markerTTL)),
			txn.SetEntry(badger.NewEntry(testResultsPrefix(kindSamples, "gone"), nil).WithTTL(markerTTL)),
			txn.SetEntry(badger.NewEntry(testResultsPrefix(kindSecond, "t"), nil).WithTTL(markerTTL)))
	})
	if err != nil {
		t.Fatal(err)
	}
	if o, err := s.Origins("gone"); len(o) != 0 || err != nil {
		t.Errorf("Origins(gone) = %q, %v; want none", o, err)
	}
	if o, err := s.Origins("t"); !slices.Equal(o, []string{"n"}) || err != nil {
		t.Errorf("Origins(t) = %q, %v; want [n]", o, err)
	}
	if ser := mustSeries(t, s, "t", "n", 0, -1); len(ser.Seconds) != 1 {
		t.Errorf("Series(t): %d seconds, want 1", len(ser.Seconds))
	}
	if r, ok, err := s.Test("gone"); !ok || err != nil || r.Finished() {
		t.Errorf("Test(gone) = %+v, %v, %v; want the marker record, not finished", r, ok, err)
	}
	if err := s.Maintain(); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer for a logger that the store's goroutines
// may write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// evictions returns the ids of the "disk budget: evicted test" log lines.
func evictions(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if _, rest, ok := strings.Cut(l, `msg="disk budget: evicted test `); ok {
			out = append(out, strings.Fields(rest)[0])
		}
	}
	return out
}

// TestDiskBudget fills a store with finished, running and pending tests
// and lowers its budget step by step: Maintain evicts finished tests only,
// the one that ended first first, logs each, and stops once under budget.
func TestDiskBudget(t *testing.T) {
	var log syncBuffer
	s := openTestStore(t, "", func(c *StoreConfig) {
		smallFiles(c)
		c.Logger = slog.New(slog.NewTextHandler(&log, nil))
	})
	at := func(h float64) time.Time {
		return time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(h * float64(time.Hour)))
	}
	// Written in another order than they ended, so that the order of
	// eviction is not the order of writing.
	for _, r := range []TestRecord{
		{ID: "f3", State: "stopped", Created: at(0), Ended: at(3)},
		{ID: "run", State: "running", Created: at(-10)}, // older than all, but running
		{ID: "f1", State: "done", Created: at(0), Ended: at(1)},
		{ID: "pend", State: "pending", Created: at(-9)},
		{ID: "f0", State: "failed", Created: at(0), Started: at(1.5)}, // no Ended: Started counts
		{ID: "f2", State: "done", Created: at(0), Ended: at(2)},
	} {
		putTestData(t, s, r, 40)
	}
	order := []string{"f1", "f0", "f2", "f3"}
	full := mustUsage(t, s)

	tests := []struct {
		name       string
		budget     int64
		evicted    []string // evicted by this step, exactly; nil with a range below
		atLeast    int      // else: at least this many more of order
		wantNoRoom bool
	}{
		{"no budget", 0, []string{}, 0, false},
		{"under budget", full + 10*mib, []string{}, 0, false},
		{"a little over", full - mib, nil, 1, false},
		{"below what running tests take", 1 * mib, nil, 0, true},
	}
	gone := 0 // tests of order evicted so far
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.maxBytes = tt.budget // the loop is off: nothing reads it concurrently
			before := len(evictions(log.String()))
			err := s.Maintain()
			if got := errors.Is(err, ErrNoRoom); got != tt.wantNoRoom {
				t.Fatalf("Maintain = %v; want ErrNoRoom: %v", err, tt.wantNoRoom)
			}
			if tt.wantNoRoom && !strings.Contains(err.Error(), "nothing finished is left to evict") {
				t.Errorf("Maintain = %v; want the reason", err)
			}
			if !tt.wantNoRoom && err != nil {
				t.Fatal(err)
			}
			got := evictions(log.String())[before:]
			switch {
			case tt.evicted != nil && !slices.Equal(got, tt.evicted):
				t.Errorf("evicted %q, want %q", got, tt.evicted)
			case tt.wantNoRoom && !slices.Equal(got, order[gone:]):
				t.Errorf("evicted %q, want every finished test left: %q", got, order[gone:])
			case tt.evicted == nil && (len(got) < tt.atLeast || !slices.Equal(got, order[gone:gone+len(got)])):
				t.Errorf("evicted %q, want at least %d of %q in that order", got, tt.atLeast, order[gone:])
			}
			gone += len(got)
			used := mustUsage(t, s)
			t.Logf("budget %s: evicted %q; store %s", formatBytes(tt.budget), got, formatBytes(used))
			if tt.budget > 0 && !tt.wantNoRoom && used > tt.budget {
				t.Errorf("store uses %s, over its budget of %s", formatBytes(used), formatBytes(tt.budget))
			}
			for i, id := range order {
				_, ok, err := s.Test(id)
				if err != nil {
					t.Fatal(err)
				}
				if n := liveSeconds(t, s, id); ok != (i >= gone) || (n == 40) != (i >= gone) {
					t.Errorf("%s: record %v, %d seconds; evicted: %v", id, ok, n, i < gone)
				}
			}
			for _, id := range []string{"run", "pend"} {
				if _, ok, _ := s.Test(id); !ok || liveSeconds(t, s, id) != 40 {
					t.Errorf("%s was touched: it is not finished", id)
				}
			}
		})
	}
	// The log line names the state and the end.
	if want := `msg="disk budget: evicted test f1 (done, ended 2025-06-01T01:00:00Z) to free space"`; !strings.Contains(log.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, log.String())
	}
	if want := `msg="disk budget: evicted test f0 (failed, ended at an unknown time) to free space"`; !strings.Contains(log.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, log.String())
	}
	// Room says why no test can start: the running ones fill the budget.
	err := s.Room()
	if !errors.Is(err, ErrNoRoom) || !regexp.MustCompile(`^store uses [0-9.]+ MiB of its 1 MiB budget and nothing finished can be evicted$`).MatchString(err.Error()) {
		t.Errorf("Room = %v; want the budget and why nothing can be evicted", err)
	}
}

// TestRoomAndWriteFloors feeds the store readings of free space and checks
// what Room and each write say. Defaults: Room's floor 512 MiB, the write
// floor for results 128 MiB, records down to the reserve (12 MiB, small
// options).
func TestRoomAndWriteFloors(t *testing.T) {
	var free atomic.Int64
	free.Store(1 << 30)
	s := openTestStore(t, "", func(c *StoreConfig) {
		c.MaintenanceInterval = -1
		c.hooks.freeBytes = func() (int64, error) { return free.Load(), nil }
	})
	if s.reserve != 12*mib || s.writeFloor != 128*mib || s.minFree != 512*mib {
		t.Fatalf("reserve %d, write floor %d, min free %d; the cases below assume 12, 128, 512 MiB", s.reserve, s.writeFloor, s.minFree)
	}
	forTests := func(free string) string {
		return fmt.Sprintf("disk nearly full: %s free on %s, below the 512 MiB floor", free, s.dir)
	}
	forWrites := func(free, floor string) string {
		return fmt.Sprintf("disk nearly full: %s free on %s, below the %s floor for writes", free, s.dir, floor)
	}
	tests := []struct {
		name    string
		free    int64
		room    string // Room's error; "" for none
		results string // the error of PutSecond, PutSeconds and PutSamples
		record  string // the error of PutTest
	}{
		{"plenty", 1 << 30, "", "", ""},                                                                // 1 GiB: room for all
		{"at the floor", 512 * mib, "", "", ""},                                                        // 512 MiB: still room
		{"under the floor for tests", 400 * mib, forTests("400 MiB"), "", ""},                          // a test running goes on
		{"under the write floor", 100 * mib, forTests("100 MiB"), forWrites("100 MiB", "128 MiB"), ""}, // results stop, records go on
		{"under the reserve", 5 * mib, forTests("5 MiB"), forWrites("5 MiB", "128 MiB"), forWrites("5 MiB", "12 MiB")},
		{"room again", 2 << 30, "", "", ""},
	}
	check := func(t *testing.T, what string, err error, want string) {
		t.Helper()
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v, want no error", what, err)
		case want != "" && (!errors.Is(err, ErrNoRoom) || !strings.HasSuffix(err.Error(), want)):
			t.Errorf("%s: %v, want ErrNoRoom ending %q", what, err, want)
		}
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			free.Store(tt.free)
			err := s.Room()
			check(t, "Room", err, tt.room)
			if err != nil && err.Error() != tt.room {
				t.Errorf("Room: %q, want exactly %q: the node shows it as the reason", err, tt.room)
			}
			T := int64(10 * i)
			check(t, "PutSecond", s.PutSecond("t", "n", markedSecond(T, 1)), tt.results)
			check(t, "PutSeconds", s.PutSeconds("t", "n", []*Second{markedSecond(T+1, 1)}), tt.results)
			check(t, "PutSecondBytes", s.PutSecondBytes("t", "n", T+2, mustEncodeSecond(t, markedSecond(T+2, 1))), tt.results)
			class := fmt.Sprint("class", i)
			check(t, "PutSamples", s.PutSamples("t", "n", map[string][]string{class: {"m"}}), tt.results)
			rec := TestRecord{ID: fmt.Sprint("rec", i)}
			check(t, "PutTest", s.PutTest(rec), tt.record)
			// What was refused was not written.
			ser := mustSeries(t, s, "t", "n", T, T+2)
			if got, want := len(ser.Seconds), map[bool]int{true: 3, false: 0}[tt.results == ""]; got != want {
				t.Errorf("%d seconds stored, want %d", got, want)
			}
			if _, ok := ser.Samples[class]; ok != (tt.results == "") {
				t.Errorf("samples stored: %v", ok)
			}
			if _, ok, _ := s.Test(rec.ID); ok != (tt.record == "") {
				t.Errorf("record stored: %v", ok)
			}
		})
	}
	t.Run("a write counts its own size", func(t *testing.T) {
		sec := bigSeconds(100, 1)[0]
		free.Store(128*mib + 1000) // over the floor, but not with 57 KB more
		check(t, "PutSecond", s.PutSecond("t", "n", sec), "below the 128 MiB floor for writes")
	})
	t.Run("an unreadable disk is not written to", func(t *testing.T) {
		s := openTestStore(t, "", func(c *StoreConfig) {
			c.MaintenanceInterval = -1
			c.hooks.freeBytes = func() (int64, error) { return 0, errors.New("statfs: input/output error") }
		})
		err := s.PutSecond("t", "n", markedSecond(0, 1))
		if err == nil || errors.Is(err, ErrNoRoom) || !strings.Contains(err.Error(), "input/output error") {
			t.Errorf("PutSecond = %v; want the statfs error, not ErrNoRoom", err)
		}
		if err := s.Room(); err == nil || errors.Is(err, ErrNoRoom) {
			t.Errorf("Room = %v; want the statfs error, not ErrNoRoom", err)
		}
	})
	t.Run("in memory", func(t *testing.T) {
		m, err := OpenStore(StoreConfig{InMemory: true, Small: true})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if err := m.Room(); err != nil {
			t.Errorf("Room = %v", err)
		}
		if u, err := m.Usage(); u != 0 || err != nil {
			t.Errorf("Usage = %d, %v", u, err)
		}
		if err := m.Maintain(); err != nil {
			t.Errorf("Maintain = %v", err)
		}
	})
}

// TestReserve checks that the store keeps its reserve file, that Close
// deletes it when the disk is nearly full (so that Badger can flush), and
// that the next open makes it again.
func TestReserve(t *testing.T) {
	var free atomic.Int64
	free.Store(1 << 30)
	var log syncBuffer
	dir := t.TempDir()
	mod := func(c *StoreConfig) {
		c.MaintenanceInterval = -1
		c.hooks.freeBytes = func() (int64, error) { return free.Load(), nil }
		c.Logger = slog.New(slog.NewTextHandler(&log, nil))
	}
	reserve := filepath.Join(dir, reserveName)
	reserveSize := func() int64 {
		fi, err := os.Stat(reserve)
		if err != nil {
			return -1
		}
		return allocatedBytes(fi)
	}
	tests := []struct {
		name        string
		freeAtClose int64
		kept        bool
	}{
		{"room at close", 1 << 30, true},
		{"just enough at close", 12 * mib, true},
		{"nearly full at close", 12*mib - 1, false},
		{"full at close", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			free.Store(1 << 30)
			s := openTestStore(t, dir, mod)
			if got := reserveSize(); got < s.reserve {
				t.Fatalf("reserve file takes %d bytes, want %d", got, s.reserve)
			}
			mustPutSecond(t, s, "t", "n", markedSecond(0, 1)) // something to flush
			free.Store(tt.freeAtClose)
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if kept := reserveSize() >= 0; kept != tt.kept {
				t.Errorf("reserve kept: %v, want %v", kept, tt.kept)
			}
			if released := strings.Contains(log.String(), "released the 12 MiB reserve"); released == tt.kept {
				t.Errorf("log says released: %v:\n%s", released, log.String())
			}
		})
	}
	t.Run("no room to make it", func(t *testing.T) {
		os.Remove(reserve)
		free.Store(100 * mib) // under write floor + reserve
		openTestStore(t, dir, mod)
		if reserveSize() >= 0 {
			t.Error("reserve made without room for it")
		}
		if !strings.Contains(log.String(), "no room for the 12 MiB reserve") {
			t.Errorf("log:\n%s", log.String())
		}
	})
	t.Run("Maintain makes it again", func(t *testing.T) {
		os.Remove(reserve)
		free.Store(100 * mib)
		s := openTestStore(t, dir, mod)
		free.Store(1 << 30)
		if err := s.Maintain(); err != nil {
			t.Fatal(err)
		}
		if got := reserveSize(); got < s.reserve {
			t.Errorf("reserve file takes %d bytes after Maintain, want %d", got, s.reserve)
		}
	})
}

// TestMaintenanceLoop checks that the loop runs Maintain on its schedule,
// that a write to a store over its budget starts a pass at once, and that
// Close stops the loop.
func TestMaintenanceLoop(t *testing.T) {
	waitFor := func(t *testing.T, what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 20 s", what)
			}
			time.Sleep(20 * time.Millisecond) // poll
		}
	}
	t.Run("on schedule", func(t *testing.T) {
		s := openTestStore(t, "", func(c *StoreConfig) { c.MaintenanceInterval = 20 * time.Millisecond })
		putTestData(t, s, TestRecord{ID: "old", State: "done"}, 5)
		if err := s.DeleteTest("old"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "deleted test dropped", func() bool { return physicalKeys(t, s, "old") == 0 })
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-s.loopDone:
		default:
			t.Error("loop still running after Close")
		}
	})
	t.Run("kicked by a write over budget", func(t *testing.T) {
		s := openTestStore(t, "", func(c *StoreConfig) {
			c.MaintenanceInterval = time.Hour
			c.hooks.valueLogFileSize = 1 << 20
		})
		putTestData(t, s, TestRecord{ID: "old", State: "done", Ended: time.Now()}, 40)
		putTestData(t, s, TestRecord{ID: "now", State: "running"}, 1)
		s.maxBytes = mustUsage(t, s) - mib // the next write tells the loop (a channel send orders this write before its read)
		mustPutSecond(t, s, "now", "a", markedSecond(1, 1))
		waitFor(t, "old test evicted", func() bool { _, ok, _ := s.Test("old"); return !ok })
		if _, ok, _ := s.Test("now"); !ok {
			t.Error("running test evicted")
		}
	})
	t.Run("no loop", func(t *testing.T) {
		s := openTestStore(t, "", func(c *StoreConfig) { c.MaintenanceInterval = -1 })
		if s.loopDone != nil {
			t.Error("a loop was started")
		}
	})
}

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1 KiB"},
		{180 * mib, "180 MiB"},
		{512 * mib, "512 MiB"},
		{10 << 30, "10 GiB"},
		{10<<30 + 200*mib, "10.2 GiB"}, // 10.195 GiB
		{1536 << 30, "1.5 TiB"},
	}
	for _, tt := range tests {
		if got := formatBytes(tt.n); got != tt.want {
			t.Errorf("formatBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
