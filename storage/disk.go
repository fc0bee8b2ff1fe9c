package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Disk. Badger writes through mmap: its value log, its write-ahead logs and
// every table it flushes or compacts are files extended with ftruncate
// (holes) and then written as memory. When the file system has no block
// left for a page, the kernel answers the write with SIGBUS, which kills
// the process: not an error any code can handle (Badger writes from its
// own goroutines). So the store keeps Badger away from a full disk: it
// refuses writes below a floor of free space (checkRoom), keeps a reserve
// file that Close deletes to give Badger the room to flush (the reserve),
// refuses new tests early (Room), and gets space back on a schedule
// (Maintain). See "Disk" in doc.go for the numbers.

// ErrNoRoom is wrapped by the errors of Room, of PutTest, PutSecond,
// PutSeconds, PutSecondBytes and PutSamples when the disk is nearly full,
// and of Maintain when it cannot work or the store stays over its budget.
// Room's messages are the reason alone, with the numbers ("disk nearly
// full: 180 MiB free on /data, below the 512 MiB floor"), so that a node
// can decline a test with the error's text.
var ErrNoRoom = errors.New("store: no room on disk")

// roomError is an ErrNoRoom whose message is the reason alone.
type roomError struct{ msg string }

func (e *roomError) Error() string { return e.msg }
func (e *roomError) Unwrap() error { return ErrNoRoom }

func noRoom(format string, a ...any) error { return &roomError{fmt.Sprintf(format, a...)} }

const (
	// DefaultMinFreeBytes is StoreConfig.MinFreeBytes when zero: 512 MiB.
	// New tests are refused below it, and results below a quarter of it
	// (128 MiB), which leaves Badger room for the flushes and compactions
	// that writes start, and the operator time to act.
	DefaultMinFreeBytes = 512 << 20
	// DefaultMaintenanceInterval is StoreConfig.MaintenanceInterval when
	// zero: 10 min. Expired tests wait that long at most for their space to
	// come back, and a store over its budget (which its writes notice
	// within a second and which then starts a pass at once, at most once a
	// minute) seldom has to wait at all.
	DefaultMaintenanceInterval = 10 * time.Minute

	// reserveName is the reserve file in the store's directory. Badger
	// reads only its own names there (*.sst, *.vlog, *.mem, MANIFEST, ...).
	reserveName = "RESERVE"
	// usageEvery is how often writes measure Usage to notice a store over
	// its budget, and kickEvery how often that may start a pass.
	usageEvery = time.Second
	kickEvery  = time.Minute
	// markerTTL is the life of the keys a drop writes to make its prefixes
	// live (dropDead); a crash between the write and the drop leaves
	// them this long.
	markerTTL = time.Minute
)

// reserveSize is the size of the reserve: what Badger writes, without a
// write of ours, to flush every memtable (Close does) and finish a
// compaction step: NumMemtables × MemTableSize + 2 × BaseTableSize. That
// is 12 MiB with small options, 324 MiB with Badger's defaults.
func reserveSize(opt badger.Options) int64 {
	return int64(opt.NumMemtables)*opt.MemTableSize + 2*opt.BaseTableSize
}

// diskReadings rate-limits what writes measure of the disk.
type diskReadings struct {
	mu       sync.Mutex
	usageAt  time.Time // when a write last measured Usage
	lastPass time.Time // when the last maintenance pass ended
}

// readFree returns the free space on the store's file system.
func (s *Store) readFree() (int64, error) {
	free, err := s.freeBytes()
	if err != nil {
		return 0, fmt.Errorf("free space on %s: %w", s.dir, err)
	}
	return free, nil
}

// checkRoom refuses a write of n bytes that would leave less than floor
// bytes free, and asks the loop for a pass when the store is over its
// budget. It does nothing for an in-memory store.
//
// It reads the free space for every write: a statfs costs about 2 µs, a
// PutSecond of a realistic second about 4 ms (BenchmarkStorePutSecond). A
// reading cached for a second would let a process that fills the disk
// faster than that (a copy does 1 GB/s) get a write of ours past the floor,
// into a full file system: SIGBUS.
func (s *Store) checkRoom(floor int64, n int) error {
	if s.inMemory {
		return nil
	}
	free, err := s.readFree()
	if err != nil {
		return err // a store that cannot read its disk should not write to it
	}
	if free-int64(n) < floor {
		return noRoom("disk nearly full: %s free on %s, below the %s floor for writes", formatBytes(free), s.dir, formatBytes(floor))
	}
	s.kickIfOverBudget()
	return nil
}

// kickIfOverBudget measures Usage at most once per usageEvery and starts a
// maintenance pass when the store is over its budget, unless one ran
// within kickEvery (a store whose running tests alone exceed the budget
// would otherwise be scanned every second).
func (s *Store) kickIfOverBudget() {
	if s.maxBytes == 0 || s.loopDone == nil {
		return
	}
	d := &s.disk
	d.mu.Lock()
	now := time.Now()
	due := now.Sub(d.usageAt) >= usageEvery && now.Sub(d.lastPass) >= kickEvery
	if due {
		d.usageAt = now
	}
	d.mu.Unlock()
	if !due {
		return
	}
	if used, err := s.usage(); err == nil && used > s.maxBytes {
		s.kickLoop()
	}
}

// kickLoop asks the loop for a pass now, without waiting.
func (s *Store) kickLoop() {
	select {
	case s.kick <- struct{}{}:
	default: // one is already asked for
	}
}

// Room returns nil when the store has room for a new test, and otherwise
// an error wrapping ErrNoRoom whose message is the reason: the file system
// has less than MinFreeBytes free ("disk nearly full: 180 MiB free on
// /data, below the 512 MiB floor"), or the store is at its budget with
// nothing finished to evict ("store uses 10.2 GiB of its 10 GiB budget and
// nothing finished can be evicted"). At its budget with finished tests to
// evict, it starts a maintenance pass and returns nil. Other errors (the
// disk cannot be read) do not wrap ErrNoRoom. An in-memory store always
// has room. A node calls Room before it accepts a test.
func (s *Store) Room() error {
	release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	if s.inMemory {
		return nil
	}
	free, err := s.readFree()
	if err != nil {
		return fmt.Errorf("store: room: %w", err)
	}
	if free < s.minFree {
		return noRoom("disk nearly full: %s free on %s, below the %s floor", formatBytes(free), s.dir, formatBytes(s.minFree))
	}
	if s.maxBytes == 0 {
		return nil
	}
	used, err := s.usage()
	if err != nil {
		return fmt.Errorf("store: room: %w", err)
	}
	if used < s.maxBytes {
		return nil
	}
	txn := s.db.NewTransaction(false)
	evictable, err := finishedTests(txn)
	txn.Discard()
	if err != nil {
		return fmt.Errorf("store: room: %w", err)
	}
	if len(evictable) == 0 {
		return noRoom("store uses %s of its %s budget and nothing finished can be evicted", formatBytes(used), formatBytes(s.maxBytes))
	}
	s.kickLoop()
	return nil
}

// Usage returns how many bytes the store takes on disk: the blocks of
// every file in its directory (Badger's tables, value logs, write-ahead
// logs and manifest, and the reserve), as du counts them. Badger's own
// DB.Size is no use for this: it counts the newest value-log file at its
// mapped length (twice the file size, mostly holes) and is refreshed once
// a minute. An in-memory store uses 0.
func (s *Store) Usage() (int64, error) {
	release, err := s.acquire()
	if err != nil {
		return 0, err
	}
	defer release()
	if s.inMemory {
		return 0, nil
	}
	used, err := s.usage()
	if err != nil {
		return 0, fmt.Errorf("store: usage: %w", err)
	}
	return used, nil
}

func (s *Store) usage() (int64, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since ReadDir (a compaction, a GC round)
		}
		if err != nil {
			return 0, err
		}
		total += allocatedBytes(fi)
	}
	return total, nil
}

// keepReserve creates the reserve file if it is missing and the disk has
// room for it above the write floor. The caller holds s.mu or has not
// shared s yet.
func (s *Store) keepReserve() {
	path := filepath.Join(s.dir, reserveName)
	if fi, err := os.Stat(path); err == nil && fi.Size() >= s.reserve {
		if fi.Size() > s.reserve { // made with larger memtables
			os.Truncate(path, s.reserve)
		}
		return
	}
	free, err := s.readFree()
	if err != nil || free-s.reserve < s.writeFloor {
		s.log.Warn(fmt.Sprintf("disk nearly full: no room for the %s reserve on %s; the store may not be able to close cleanly if the disk fills", formatBytes(s.reserve), s.dir))
		return
	}
	if err := makeReserve(path, s.reserve); err != nil {
		os.Remove(path)
		s.log.Warn(fmt.Sprintf("store: reserve: %v", err))
	}
}

// makeReserve creates a file of n allocated bytes at path.
func makeReserve(path string, n int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = preallocate(f, n)
	if err != nil {
		// No fallocate here: write zeros, which allocate blocks too
		// (except on file systems that compress them away).
		err = nil
		zeros := make([]byte, 1<<20)
		for left := n; left > 0 && err == nil; left -= int64(len(zeros)) {
			_, err = f.Write(zeros[:min(left, int64(len(zeros)))])
		}
	}
	return errors.Join(err, f.Close())
}

// releaseReserveIfLow deletes the reserve file when the disk has less free
// space than the reserve's size (or cannot be read), and says so. The
// caller holds s.mu for writing.
func (s *Store) releaseReserveIfLow() {
	if free, err := s.readFree(); err == nil && free >= s.reserve {
		return
	}
	if err := os.Remove(filepath.Join(s.dir, reserveName)); err == nil {
		s.log.Warn(fmt.Sprintf("disk nearly full: released the %s reserve on %s so that the store can flush and close", formatBytes(s.reserve), s.dir))
	}
}

// Finished reports whether the test has ended: its State is "done",
// "failed" or "stopped". Only finished tests are evicted for the disk
// budget.
func (r TestRecord) Finished() bool {
	switch r.State {
	case "done", "failed", "stopped":
		return true
	}
	return false
}

// endTime is when a test ended, for the eviction order: Ended, else
// Started, else Created.
func (r TestRecord) endTime() time.Time {
	for _, t := range []time.Time{r.Ended, r.Started} {
		if !t.IsZero() {
			return t
		}
	}
	return r.Created
}

// finishedTests returns the finished tests of txn, the one that ended
// first first (then by id). Records that do not decode are left out: they
// cannot be judged finished.
func finishedTests(txn *badger.Txn) ([]TestRecord, error) {
	var out []TestRecord
	prefix := []byte{keyVersion, kindTest}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 16})
	defer it.Close()
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		id, rest, ok := parseID(it.Item().Key()[len(prefix):])
		if !ok || len(rest) != 0 {
			continue
		}
		err := it.Item().Value(func(v []byte) error {
			if r, err := decodeStoredTest(id, v); err == nil && r.Finished() {
				r.Spec, r.Plan = nil, nil // not needed; v is Badger's, r's bytes are copies
				out = append(out, r)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, func(a, b TestRecord) int {
		if c := a.endTime().Compare(b.endTime()); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Maintain runs one maintenance pass, the one the store's loop runs every
// MaintenanceInterval:
//
//  1. Retention: it drops the keys of every test that has keys on disk but
//     none alive (all expired, or deleted by DeleteTest). Badger hides
//     such keys at once but frees their space only when a compaction
//     drops them, which a quiet store never does.
//  2. Disk budget: while Usage is over MaxBytes, it evicts the finished
//     test that ended first (whole: record, seconds and samples), logs
//     "disk budget: evicted test ID (STATE, ended TIME) to free space",
//     and collects garbage. Space comes back a value-log file at a time,
//     so it may evict more than the excess.
//  3. It collects value-log garbage (CollectGarbage).
//  4. It re-creates the reserve file if it is missing and there is room.
//
// Steps 1 to 3 write, so they are skipped while the disk has less free
// space than the reserve. Drops hold the store: calls wait for them
// (Badger would refuse writes during a drop). Maintain returns ErrClosed
// after Close, and an error wrapping ErrNoRoom when the disk is too full
// for it to work or the store stays over its budget with nothing finished
// left to evict. One pass runs at a time.
// It does nothing for an in-memory store.
func (s *Store) Maintain() error {
	s.maintMu.Lock()
	defer s.maintMu.Unlock()
	if s.stopping() {
		return ErrClosed // Close is waiting: do not make it wait for a whole pass
	}
	defer func() {
		s.disk.mu.Lock()
		s.disk.lastPass = time.Now()
		s.disk.mu.Unlock()
	}()
	release, err := s.acquire()
	if err != nil {
		return err
	}
	if s.inMemory {
		release()
		return nil
	}
	free, err := s.readFree()
	release()
	if err != nil {
		return fmt.Errorf("store: maintain: %w", err)
	}
	var errs []error
	if free >= s.reserve {
		errs = append(errs, s.dropDead())
		errs = append(errs, s.keepBudget())
		errs = append(errs, s.CollectGarbage())
	} else {
		errs = append(errs, noRoom("disk nearly full: %s free on %s, under the %s that maintenance needs; skipped", formatBytes(free), s.dir, formatBytes(s.reserve)))
	}
	release, err = s.acquire()
	if err != nil {
		return err
	}
	s.keepReserve()
	release()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: maintain: %w", err)
	}
	return nil
}

// loop runs Maintain every interval, and when kicked, until Close.
func (s *Store) loop(every time.Duration) {
	defer close(s.loopDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.kick:
		}
		if err := s.Maintain(); err != nil && !errors.Is(err, ErrClosed) {
			s.log.Warn("store maintenance failed", "err", err)
		}
	}
}

// stopping reports whether Close has been called.
func (s *Store) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// dropDead drops the keys of the tests that have keys on disk but none
// alive. It holds the store while it looks and drops, so that a write
// cannot bring such a test back to life in between.
func (s *Store) dropDead() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	dead, err := s.deadTestsLocked()
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	if len(dead) == 0 {
		return nil
	}
	// DropPrefix drops only the prefixes that hold a live key (it looks
	// with a plain iterator), and these hold none: give each prefix a
	// short-lived key, which the drop removes with the rest. No call sees
	// them, as s.mu is held; after a crash in between they expire.
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, id := range dead {
		var entries []*badger.Entry
		if rec, err := encodeTest(&TestRecord{ID: id, State: "expired", Reason: "being removed by retention"}); err == nil {
			entries = append(entries, badger.NewEntry(testKey(id), rec))
		}
		for _, kind := range resultKinds {
			entries = append(entries, badger.NewEntry(testResultsPrefix(kind, id), nil))
		}
		for _, e := range entries {
			if err := wb.SetEntry(e.WithTTL(markerTTL)); err != nil {
				return fmt.Errorf("retention: mark test %q: %w", id, err)
			}
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("retention: mark %d tests: %w", len(dead), err)
	}
	if err := s.db.DropPrefix(testPrefixes(dead...)...); err != nil {
		return fmt.Errorf("retention: drop %d tests: %w", len(dead), err)
	}
	return nil
}

// testPrefixes returns the prefixes of every key of the tests.
func testPrefixes(ids ...string) [][]byte {
	var out [][]byte
	for _, id := range ids {
		out = append(out, testKey(id))
		for _, kind := range resultKinds {
			out = append(out, testResultsPrefix(kind, id))
		}
	}
	return out
}

// deadTestsLocked returns, sorted, the ids of the tests that have keys on
// disk, in any version, but none alive: every one expired or deleted.
func (s *Store) deadTestsLocked() ([]string, error) {
	present := map[string]bool{}
	var dead []string
	err := s.db.View(func(txn *badger.Txn) error {
		// Every version, keys only; one seek per test and kind.
		all := txn.NewIterator(badger.IteratorOptions{AllVersions: true})
		defer all.Close()
		for _, kind := range append([]byte{kindTest}, resultKinds...) {
			prefix := []byte{keyVersion, kind}
			for all.Seek(prefix); all.ValidForPrefix(prefix); {
				id, _, ok := parseID(all.Item().Key()[len(prefix):])
				if !ok {
					all.Next()
					continue
				}
				present[id] = true
				// Every key of the test under this kind is its prefix and
				// bytes below 0xff (a length byte, or nothing).
				all.Seek(append(appendID(slices.Clone(prefix), id), 0xff))
			}
		}
		live := txn.NewIterator(badger.IteratorOptions{})
		defer live.Close()
		for id := range present {
			if _, err := txn.Get(testKey(id)); err == nil {
				continue
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
			alive := false
			for _, kind := range resultKinds {
				p := testResultsPrefix(kind, id)
				if live.Seek(p); live.ValidForPrefix(p) {
					alive = true
					break
				}
			}
			if !alive {
				dead = append(dead, id)
			}
		}
		return nil
	})
	slices.Sort(dead)
	return dead, err
}

// keepBudget evicts finished tests, the one that ended first first, while
// the store is over its budget.
func (s *Store) keepBudget() error {
	if s.maxBytes == 0 {
		return nil
	}
	for !s.stopping() {
		used, err := s.Usage()
		if err != nil {
			return err
		}
		if used <= s.maxBytes {
			return nil
		}
		r, ok, err := s.evictOldest()
		if err != nil {
			return fmt.Errorf("disk budget: %w", err)
		}
		if !ok {
			return noRoom("disk budget: store uses %s of its %s budget and nothing finished is left to evict", formatBytes(used), formatBytes(s.maxBytes))
		}
		ended := "at an unknown time"
		if !r.Ended.IsZero() {
			ended = r.Ended.UTC().Format(time.RFC3339)
		}
		s.log.Warn(fmt.Sprintf("disk budget: evicted test %s (%s, ended %s) to free space", r.ID, r.State, ended))
		if err := s.CollectGarbage(); err != nil {
			return err
		}
	}
	return nil
}

// evictOldest drops the finished test that ended first, and returns its
// record; false if there is none. It holds the store while it chooses and
// drops, so that the test cannot start again in between.
func (s *Store) evictOldest() (TestRecord, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return TestRecord{}, false, ErrClosed
	}
	txn := s.db.NewTransaction(false)
	fin, err := finishedTests(txn)
	txn.Discard()
	if err != nil || len(fin) == 0 {
		return TestRecord{}, false, err
	}
	r := fin[0]
	if err := s.db.DropPrefix(testPrefixes(r.ID)...); err != nil {
		return TestRecord{}, false, fmt.Errorf("evict test %q: %w", r.ID, err)
	}
	return r, true, nil
}

// formatBytes writes n in binary units with at most one decimal:
// "512 MiB", "10.2 GiB".
func formatBytes(n int64) string {
	if n > -1024 && n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n)/1024, 0
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	for math.Abs(v) >= 1024 && unit < len(units)-1 {
		v /= 1024
		unit++
	}
	return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0") + " " + units[unit]
}
