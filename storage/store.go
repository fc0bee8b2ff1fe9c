package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Key schema, version 1. Every key starts with the schema version byte
// (0x01) and a kind byte; ids follow as a length byte and the id's bytes
// (ids are 1 to MaxIDLen bytes), and seconds as a big-endian uint64:
//
//	test record   01 't' len(test) test
//	second        01 'r' len(test) test len(origin) origin T (8 bytes, big-endian)
//	error samples 01 's' len(test) test len(origin) origin
//	observed      01 'o' len(test) test len(origin) origin T (8 bytes, big-endian)
//
// "test" is a test id, "origin" the id of the node that measured the
// results (a node keeps its own seconds under its own id and replicas of
// another node's seconds under that node's id). Because every id is
// length-prefixed, a key parses one way only: no id, whatever bytes it holds
// ("/" included), can make one key look like another, and the prefix of one
// test ("01 'r' 01 't1'") is never a prefix of another test's keys
// ("01 'r' 02 't10'"). So a test, a (test, origin) pair and a range of
// seconds are each one contiguous prefix scan, and seconds scan in T order.
// A key that is a test's prefix alone ("01 'r' len(test) test") is a
// short-lived drop marker (disk.go, dropDead) and holds no results.
//
// Values are CBOR: a TestRecord as wireTest, a second as EncodeSecond writes
// it, error samples as EncodeSeries writes a Series with samples only. Every
// value is written with a TTL of StoreConfig.Retention. A later schema
// takes the next version byte; version 1 scans never see its keys.
const (
	keyVersion  byte = 1
	kindTest    byte = 't'
	kindSecond  byte = 'r'
	kindSamples byte = 's'
	// kindObserved keys are a second's keys: 01 'o' len(test) test
	// len(origin) origin T; origin is the node that read the system
	// under test (observed.go).
	kindObserved byte = 'o'
)

// resultKinds are the kinds of a test's result keys, which retention and
// DeleteTest remove with the test.
var resultKinds = []byte{kindSecond, kindSamples, kindObserved}

// Limits of what the store accepts. PutTest and the Put methods refuse more
// with an error; nothing is cut silently, except error samples, which
// Series.AddSample clips as documented there.
const (
	// MaxIDLen is the longest test or node id, in bytes. Ids are non-empty
	// valid UTF-8.
	MaxIDLen = 128
	// MaxSpecBytes is the largest TestRecord.Spec: 1 MiB.
	MaxSpecBytes = 1 << 20
	// MaxPlanBytes is the largest TestRecord.Plan: 4 MiB.
	MaxPlanBytes = 4 << 20
	// MaxTextLen is the longest of TestRecord.Name, Submitter and State,
	// in bytes of UTF-8.
	MaxTextLen = 1 << 10
	// MaxReasonLen is the longest TestRecord.Reason, in bytes of UTF-8.
	MaxReasonLen = 64 << 10
	// MaxTestNodes is the largest number of TestRecord.Nodes.
	MaxTestNodes = 1 << 16

	// maxTestBytes bounds an encoded TestRecord that decodeTest reads:
	// spec, plan, nodes and text together stay well below it.
	maxTestBytes = 16 << 20
	// txnRetries is how often PutSamples tries a read-modify-write that
	// conflicts with concurrent ones on the same key. Each conflict means
	// another writer committed, so this many tries suffice for this many
	// concurrent writers of one (test, origin).
	txnRetries = 10
)

// DefaultRetention is how long results and test records are kept when
// StoreConfig.Retention is zero: 30 days.
const DefaultRetention = 30 * 24 * time.Hour

// ErrClosed is returned by every Store method called after Close.
var ErrClosed = errors.New("store: closed")

// StoreConfig configures a Store. The zero value of each field but Dir is
// its default.
//
// Durability (NoSync). Badger (v4) copies every committed transaction into
// its write-ahead log (the memtable's .mem file) and, for values over the
// value threshold, its value log (.vlog), both mapped with mmap(MAP_SHARED),
// before Commit returns; with SyncWrites it also msyncs both files before
// returning (value.go, db.go writeToLSM; options.go WithSyncWrites: "all
// writes can survive process crashes ... with SyncWrites set to false";
// true is "to survive hard reboots"). So:
//
//   - kill -9 (or a panic, or the OOM killer) of the process loses nothing
//     that was committed, with SyncWrites false or true: the written pages
//     belong to the kernel's page cache, which writes them back to the files
//     whether or not the process still exists. Only the transaction in
//     progress is lost; Badger drops a partly written one when it reopens.
//     TestReopenAfterKill checks this for both settings.
//   - a crash of the host (power loss, kernel panic, a VM stopped) loses,
//     with SyncWrites false, whatever the kernel had not yet written back:
//     on Linux, dirty pages may wait 30 s (vm.dirty_expire_centisecs) plus
//     up to 5 s, so about the last 35 s of results. With SyncWrites true it
//     loses only the transaction in progress. (No test here can cut the
//     power.)
//
// DESIGN.md's guarantee 6 ("a crash loses at most the current second")
// must hold for a host crash too: a node that reboots with a hole in its own
// results would answer queries with it, and its own results win over
// replicas. So the store syncs by default (NoSync false, SyncWrites true).
// The cost is an msync per commit, 0.2 to 1.4 ms more per PutSecond on the
// development machine (BenchmarkStorePutSecond): a node commits its own seconds once
// a second, and a replica holder can batch them (PutSeconds). NoSync is for
// in-process test fleets, where only the process can crash and nothing is
// lost either way.
type StoreConfig struct {
	// Dir is the data directory, created if missing. Required unless
	// InMemory, and must be empty when InMemory.
	Dir string
	// InMemory keeps everything in memory (for tests); nothing survives
	// Close. Default false.
	InMemory bool
	// Retention is how long a value is kept after it was last written:
	// every test record, second and sample set expires that long after its
	// last Put (Badger TTL, whose resolution is whole seconds: a value
	// expires between Retention-1s and Retention after its write). Zero
	// means DefaultRetention (30 days); it must be at least 1 s.
	Retention time.Duration
	// Small uses small memory options (LIBRARIES.md; measured here: about
	// 5 MiB of heap per open store instead of about 86 MiB) so that many
	// nodes fit in one process. Default false: Badger's defaults, for one
	// node per process.
	Small bool
	// NoSync turns Badger's SyncWrites off: see "Durability" above. Default
	// false (every commit is synced to disk before it returns).
	NoSync bool
	// Logger receives Badger's log at warning level and up, and the
	// store's own lines (tests evicted for the disk budget, the reserve
	// released, maintenance that failed); nil discards them.
	Logger *slog.Logger

	// MaxBytes is the disk budget: the most the store may take on disk,
	// in bytes, counted as Usage counts (the blocks of every file in Dir,
	// the reserve included: what du shows). Over it, the maintenance pass
	// evicts whole finished tests, oldest first, until the store is under
	// it again; running and pending tests are never evicted, so the budget
	// is a target, not a hard cap (see "Disk" in doc.go). Zero, the
	// default, means no budget: the store cannot know what else shares the
	// disk, so the operator sets one; the free-space floors below protect
	// the host either way. With Small, Badger's own files (the reserve,
	// the write-ahead logs, the newest value-log file) take up to 40 MiB
	// whatever the store holds, so a smaller budget evicts every finished
	// test. Only for a store on disk.
	MaxBytes int64
	// MinFreeBytes is the free space, in bytes, on Dir's file system below
	// which Room refuses new tests. Writes of results are refused below a
	// quarter of it (the write floor, at least the reserve; see "Disk" in
	// doc.go). Zero means DefaultMinFreeBytes (512 MiB).
	MinFreeBytes int64
	// MaintenanceInterval is how often a background loop runs Maintain
	// (retention, disk budget, value-log garbage collection). Zero means
	// DefaultMaintenanceInterval (10 min); a negative interval starts no
	// loop, and Maintain is then the caller's to call. An in-memory store
	// has no loop.
	MaintenanceInterval time.Duration

	// hooks replace readings of the outside world in tests; zero in
	// production.
	hooks storeHooks
}

// storeHooks are the test seams of a Store.
type storeHooks struct {
	freeBytes        func() (int64, error) // replaces statfs of Dir
	valueLogFileSize int64                 // replaces the value-log file size (GC never rewrites the newest file)
}

// Validate reports every problem of c at once.
func (c StoreConfig) Validate() error {
	var errs []error
	switch {
	case !c.InMemory && c.Dir == "":
		errs = append(errs, errors.New("dir is required unless in-memory"))
	case c.InMemory && c.Dir != "":
		errs = append(errs, fmt.Errorf("dir %q must be empty for an in-memory store", c.Dir))
	}
	switch {
	case c.Retention < 0:
		errs = append(errs, fmt.Errorf("retention %v is negative", c.Retention))
	case c.Retention > 0 && c.Retention < time.Second:
		errs = append(errs, fmt.Errorf("retention %v is under 1s, the resolution of Badger's TTL", c.Retention))
	}
	switch {
	case c.MaxBytes < 0:
		errs = append(errs, fmt.Errorf("max bytes %d is negative", c.MaxBytes))
	case c.MaxBytes > 0 && c.InMemory:
		errs = append(errs, errors.New("max bytes is a disk budget: an in-memory store has none"))
	}
	if c.MinFreeBytes < 0 {
		errs = append(errs, fmt.Errorf("min free bytes %d is negative", c.MinFreeBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store config: %w", err)
	}
	return nil
}

// retention returns the configured retention or its default.
func (c StoreConfig) retention() time.Duration {
	if c.Retention == 0 {
		return DefaultRetention
	}
	return c.Retention
}

// minFree returns the configured free-space floor or its default.
func (c StoreConfig) minFree() int64 {
	if c.MinFreeBytes == 0 {
		return DefaultMinFreeBytes
	}
	return c.MinFreeBytes
}

// maintenanceInterval returns the configured interval or its default.
func (c StoreConfig) maintenanceInterval() time.Duration {
	if c.MaintenanceInterval == 0 {
		return DefaultMaintenanceInterval
	}
	return c.MaintenanceInterval
}

// Value-log file sizes. Badger's default, 1 GiB, is too coarse: garbage
// collection rewrites or deletes whole files and never the newest one, so
// a store that writes less than a file between collections gets nothing
// back, and a disk budget is met only to within a file or two.
const (
	valueLogFileSize      = 128 << 20
	smallValueLogFileSize = 16 << 20
)

// badgerOptions translates c into Badger's options.
func (c StoreConfig) badgerOptions() badger.Options {
	opt := badger.DefaultOptions(c.Dir)
	if c.InMemory {
		opt = badger.DefaultOptions("").WithInMemory(true)
	}
	opt = opt.WithValueLogFileSize(valueLogFileSize)
	if c.Small {
		// LIBRARIES.md's small options. Block cache 0 needs
		// compression off (Snappy with no cache panics); one compactor is
		// refused by Badger.
		opt = opt.WithMemTableSize(4 << 20).WithNumMemtables(2).WithBlockCacheSize(0).
			WithCompression(options.None).WithValueThreshold(1 << 10).
			WithNumCompactors(2).WithNumGoroutines(2).WithValueLogFileSize(smallValueLogFileSize)
	}
	if c.hooks.valueLogFileSize > 0 {
		opt = opt.WithValueLogFileSize(c.hooks.valueLogFileSize)
	}
	var logger badger.Logger // nil: Badger logs nothing
	if c.Logger != nil {
		logger = badgerLogger{c.Logger}
	}
	return opt.WithSyncWrites(!c.NoSync).WithLogger(logger)
}

// badgerLogger passes Badger's warnings and errors to slog and drops the
// rest.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}

func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}

// Store is a node's Badger store of tests and per-second results. It is
// safe for concurrent use; Close waits for the calls in progress.
type Store struct {
	db        *badger.DB
	retention time.Duration
	inMemory  bool
	dir       string
	log       *slog.Logger // never nil

	// Disk (disk.go); all zero for an in-memory store.
	maxBytes   int64 // budget; 0: none
	minFree    int64 // Room's floor of free space
	writeFloor int64 // free space below which results are refused
	reserve    int64 // size of the reserve file
	freeBytes  func() (int64, error)

	mu     sync.RWMutex // held for reading by every call, for writing by Close and by drops
	closed bool

	maintMu  sync.Mutex    // one maintenance pass at a time
	stop     chan struct{} // closed by Close: the loop and a pass in progress stop
	stopOnce sync.Once
	loopDone chan struct{} // closed when the loop returns; nil without a loop
	kick     chan struct{} // (buffered) asks the loop for a pass now

	disk diskReadings
}

// OpenStore validates cfg and opens (or creates) the store. It never
// panics; an error says what was wrong (an invalid config, a directory
// locked by another process, a store Badger cannot read). A store on disk
// creates its reserve file if the disk has room for it, and starts its
// maintenance loop unless cfg.MaintenanceInterval is negative.
func OpenStore(cfg StoreConfig) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opt := cfg.badgerOptions()
	db, err := badger.Open(opt)
	if err != nil {
		if cfg.InMemory {
			return nil, fmt.Errorf("store: open in memory: %w", err)
		}
		return nil, fmt.Errorf("store: open %s: %w", cfg.Dir, err)
	}
	s := &Store{
		db: db, retention: cfg.retention(), inMemory: cfg.InMemory, dir: cfg.Dir,
		log:  cfg.Logger,
		stop: make(chan struct{}), kick: make(chan struct{}, 1),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if cfg.InMemory {
		return s, nil
	}
	s.maxBytes, s.minFree = cfg.MaxBytes, cfg.minFree()
	s.reserve = reserveSize(opt)
	s.writeFloor = max(s.minFree/4, s.reserve)
	s.freeBytes = cfg.hooks.freeBytes
	if s.freeBytes == nil {
		dir := cfg.Dir
		s.freeBytes = func() (int64, error) { return freeSpace(dir) }
	}
	s.keepReserve()
	if iv := cfg.maintenanceInterval(); iv > 0 {
		s.loopDone = make(chan struct{})
		go s.loop(iv)
	}
	return s, nil
}

// Close stops the maintenance loop and closes the store after the calls
// in progress have returned. Later calls, Close included, return
// ErrClosed. On a nearly full disk it first deletes the reserve file, so
// that Badger has the room to flush its memtables: writing them into a
// full file system through mmap would kill the process with SIGBUS.
func (s *Store) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	if s.loopDone != nil {
		<-s.loopDone
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	if !s.inMemory {
		s.releaseReserveIfLow()
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// acquire holds the store open for one call; the caller defers the
// returned function.
func (s *Store) acquire() (func(), error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, ErrClosed
	}
	return s.mu.RUnlock, nil
}

// CollectGarbage reclaims the disk space of expired and replaced values
// from Badger's value log, one log file per round, until no file is worth
// rewriting. Badger counts a value as garbage only once a compaction has
// dropped its key, so this alone gets back little: Maintain, which the
// store's loop runs, first drops the keys of expired, deleted and evicted
// tests, then calls this. It does nothing for an in-memory store.
func (s *Store) CollectGarbage() error {
	release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	if s.inMemory {
		return nil
	}
	for !s.stopping() {
		// 0.5: a file is rewritten when at least half of it is garbage,
		// so a rewrite copies at most as much as it frees.
		err := s.db.RunValueLogGC(0.5)
		switch {
		case err == nil:
			continue
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return nil // nothing (more) to do, or a collection is already running
		default:
			return fmt.Errorf("store: collect garbage: %w", err)
		}
	}
	return nil // Close was called: it waits for this round, not for the rest
}

// checkID checks a test or node id: 1 to MaxIDLen bytes of UTF-8.
func checkID(what, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("empty %s id", what)
	case len(id) > MaxIDLen:
		return fmt.Errorf("%s id %q... is %d bytes, over the limit of %d", what, clip(id, 32), len(id), MaxIDLen)
	case !utf8.ValidString(id):
		return fmt.Errorf("%s id %q is not valid UTF-8", what, id)
	}
	return nil
}

// appendID appends id, length-prefixed, to key. The id must have passed
// checkID.
func appendID(key []byte, id string) []byte {
	return append(append(key, byte(len(id))), id...)
}

func testKey(testID string) []byte {
	return appendID([]byte{keyVersion, kindTest}, testID)
}

// testResultsPrefix is the prefix of every key of a kind (kindSecond or
// kindSamples) of a test.
func testResultsPrefix(kind byte, testID string) []byte {
	return appendID([]byte{keyVersion, kind}, testID)
}

// originPrefix is the prefix of the seconds of one origin of a test; it is
// also the key of that origin's error samples when kind is kindSamples.
func originPrefix(kind byte, testID, origin string) []byte {
	return appendID(testResultsPrefix(kind, testID), origin)
}

func secondKey(testID, origin string, t int64) []byte {
	return binary.BigEndian.AppendUint64(originPrefix(kindSecond, testID, origin), uint64(t))
}

// parseID reads a length-prefixed id from the front of b.
func parseID(b []byte) (id string, rest []byte, ok bool) {
	if len(b) == 0 || b[0] == 0 || int(b[0]) > MaxIDLen || len(b) < 1+int(b[0]) {
		return "", nil, false
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], true
}

// parseResultKey parses a second or samples key into its parts; t is -1 for
// a samples key.
func parseResultKey(key []byte) (kind byte, testID, origin string, t int64, err error) {
	if len(key) < 2 || key[0] != keyVersion || !slices.Contains(resultKinds, key[1]) {
		return 0, "", "", 0, fmt.Errorf("key %x: not a result key of schema %d", key, keyVersion)
	}
	kind = key[1]
	testID, rest, ok := parseID(key[2:])
	if !ok {
		return 0, "", "", 0, fmt.Errorf("key %x: bad test id", key)
	}
	origin, rest, ok = parseID(rest)
	if !ok {
		return 0, "", "", 0, fmt.Errorf("key %x: bad origin id", key)
	}
	switch {
	case kind == kindSamples && len(rest) == 0:
		return kind, testID, origin, -1, nil
	case (kind == kindSecond || kind == kindObserved) && len(rest) == 8:
		u := binary.BigEndian.Uint64(rest)
		if u > math.MaxInt64 {
			return 0, "", "", 0, fmt.Errorf("key %x: second %d out of range", key, u)
		}
		return kind, testID, origin, int64(u), nil
	}
	return 0, "", "", 0, fmt.Errorf("key %x: %d bytes after the ids", key, len(rest))
}

// set writes a value with the store's TTL.
func (s *Store) set(txn *badger.Txn, key, value []byte) error {
	return txn.SetEntry(badger.NewEntry(key, value).WithTTL(s.retention))
}

// TestRecord is what a node keeps about a test it took part in or
// submitted. The store checks its limits (MaxSpecBytes and the other Max
// constants) and that its text is valid UTF-8; everything else is the
// caller's.
type TestRecord struct {
	ID        string // test id (see MaxIDLen)
	Name      string
	Spec      []byte // the test file as submitted (YAML/JSON), at most MaxSpecBytes
	Submitter string // who submitted it (a node name or key id)
	State     string // free text owned by the caller: "pending","running","done","failed","stopped" (the last three are Finished: the disk budget may evict them)

	// Created, Started and Ended are kept to the nanosecond, without their
	// location or monotonic reading; the zero time stays zero. Times
	// outside the years 1678 to 2262 are refused.
	Created, Started, Ended time.Time

	Epoch  uint64   // latest plan epoch seen
	Plan   []byte   // latest plan, opaque to storage (CBOR from the scheduler), at most MaxPlanBytes
	Nodes  []string // nodes that took part (node ids)
	Reason string   // why it failed/stopped, if it did
	Target string   // the target URL that replaced the spec's, if one did
	// Extra is what the caller keeps with the record (the node: each
	// node's share span, names and regions), opaque to storage, at most
	// MaxPlanBytes.
	Extra []byte
}

// wireTest is the encoding of a TestRecord. Times are Unix nanoseconds,
// absent for the zero time.
type wireTest struct {
	ID        string   `cbor:"1,keyasint"`
	Name      string   `cbor:"2,keyasint,omitempty"`
	Spec      []byte   `cbor:"3,keyasint,omitempty"`
	Submitter string   `cbor:"4,keyasint,omitempty"`
	State     string   `cbor:"5,keyasint,omitempty"`
	Created   *int64   `cbor:"6,keyasint,omitempty"`
	Started   *int64   `cbor:"7,keyasint,omitempty"`
	Ended     *int64   `cbor:"8,keyasint,omitempty"`
	Epoch     uint64   `cbor:"9,keyasint,omitempty"`
	Plan      []byte   `cbor:"10,keyasint,omitempty"`
	Nodes     []string `cbor:"11,keyasint,omitempty"`
	Reason    string   `cbor:"12,keyasint,omitempty"`
	Target    string   `cbor:"13,keyasint,omitempty"`
	Extra     []byte   `cbor:"14,keyasint,omitempty"`
}

var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

func timeToWire(what string, t time.Time) (*int64, error) {
	if t.IsZero() {
		return nil, nil
	}
	if t.Before(minNanoTime) || t.After(maxNanoTime) {
		return nil, fmt.Errorf("%s time %v out of range", what, t)
	}
	n := t.UnixNano()
	return &n, nil
}

func timeFromWire(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n)
}

// checkTest checks r against the limits that decodeTest enforces.
func checkTest(r *TestRecord) error {
	if err := checkID("test", r.ID); err != nil {
		return err
	}
	var errs []error
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"name", r.Name, MaxTextLen}, {"submitter", r.Submitter, MaxTextLen},
		{"state", r.State, MaxTextLen}, {"reason", r.Reason, MaxReasonLen}, {"target", r.Target, MaxTextLen},
	} {
		if err := checkText(f.name, f.v, f.max); err != nil {
			errs = append(errs, err)
		}
	}
	if len(r.Spec) > MaxSpecBytes {
		errs = append(errs, fmt.Errorf("spec is %d bytes, over the limit of %d", len(r.Spec), MaxSpecBytes))
	}
	if len(r.Plan) > MaxPlanBytes {
		errs = append(errs, fmt.Errorf("plan is %d bytes, over the limit of %d", len(r.Plan), MaxPlanBytes))
	}
	if len(r.Extra) > MaxPlanBytes {
		errs = append(errs, fmt.Errorf("extra is %d bytes, over the limit of %d", len(r.Extra), MaxPlanBytes))
	}
	if len(r.Nodes) > MaxTestNodes {
		errs = append(errs, fmt.Errorf("%d nodes, over the limit of %d", len(r.Nodes), MaxTestNodes))
	} else {
		for i, n := range r.Nodes {
			if err := checkID("node", n); err != nil {
				errs = append(errs, fmt.Errorf("nodes[%d]: %w", i, err))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// encodeTest encodes r, refusing what decodeTest would refuse.
func encodeTest(r *TestRecord) ([]byte, error) {
	if err := checkTest(r); err != nil {
		return nil, err
	}
	w := wireTest{
		ID: r.ID, Name: r.Name, Spec: r.Spec, Submitter: r.Submitter, State: r.State,
		Epoch: r.Epoch, Plan: r.Plan, Nodes: r.Nodes, Reason: r.Reason, Target: r.Target, Extra: r.Extra,
	}
	var err1, err2, err3 error
	w.Created, err1 = timeToWire("created", r.Created)
	w.Started, err2 = timeToWire("started", r.Started)
	w.Ended, err3 = timeToWire("ended", r.Ended)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	return encMode.Marshal(&w)
}

// decodeTest decodes a record written by encodeTest and checks it as
// PutTest does. It never panics.
func decodeTest(data []byte) (TestRecord, error) {
	if len(data) > maxTestBytes {
		return TestRecord{}, fmt.Errorf("input is %d bytes, over the limit of %d", len(data), maxTestBytes)
	}
	var w *wireTest
	if err := decMode.Unmarshal(data, &w); err != nil {
		return TestRecord{}, err
	}
	if w == nil {
		return TestRecord{}, errors.New("null")
	}
	r := TestRecord{
		ID: w.ID, Name: w.Name, Spec: w.Spec, Submitter: w.Submitter, State: w.State,
		Created: timeFromWire(w.Created), Started: timeFromWire(w.Started), Ended: timeFromWire(w.Ended),
		Epoch: w.Epoch, Plan: w.Plan, Nodes: w.Nodes, Reason: w.Reason, Target: w.Target, Extra: w.Extra,
	}
	if err := checkTest(&r); err != nil {
		return TestRecord{}, err
	}
	return r, nil
}

// PutTest inserts r, or replaces the record with the same ID, and restarts
// its retention. It refuses a record over the limits (see TestRecord).
func (s *Store) PutTest(r TestRecord) error {
	release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	v, err := encodeTest(&r)
	if err != nil {
		return fmt.Errorf("store: put test %q: %w", clip(r.ID, MaxIDLen), err)
	}
	// A record may go down to the reserve, below the write floor of
	// results: a test's final state is what lets the budget evict it
	// later, and the reserve still leaves Badger room to flush.
	if err := s.checkRoom(s.reserve, len(v)); err != nil {
		return fmt.Errorf("store: put test %q: %w", r.ID, err)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return s.set(txn, testKey(r.ID), v) }); err != nil {
		return fmt.Errorf("store: put test %q: %w", r.ID, err)
	}
	return nil
}

// Test returns the record of the test id, and false if there is none (or
// it has expired). A record that does not decode is an error.
func (s *Store) Test(id string) (TestRecord, bool, error) {
	release, err := s.acquire()
	if err != nil {
		return TestRecord{}, false, err
	}
	defer release()
	if err := checkID("test", id); err != nil {
		return TestRecord{}, false, fmt.Errorf("store: test: %w", err)
	}
	var r TestRecord
	err = s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(testKey(id))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			r, err = decodeStoredTest(id, v)
			return err
		})
	})
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return TestRecord{}, false, nil
	case err != nil:
		return TestRecord{}, false, fmt.Errorf("store: test %q: %w", id, err)
	}
	return r, true, nil
}

// decodeStoredTest decodes the value under the key of test id.
func decodeStoredTest(id string, v []byte) (TestRecord, error) {
	r, err := decodeTest(v)
	if err != nil {
		return TestRecord{}, fmt.Errorf("corrupt record: %w", err)
	}
	if r.ID != id {
		return TestRecord{}, fmt.Errorf("corrupt record: holds test %q", r.ID)
	}
	return r, nil
}

// Tests returns every test record, newest first (by Created, then by ID).
// It reads every record whole, specs and plans included.
func (s *Store) Tests() ([]TestRecord, error) {
	release, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	var out []TestRecord
	prefix := []byte{keyVersion, kindTest}
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			id, rest, ok := parseID(item.Key()[len(prefix):])
			if !ok || len(rest) != 0 {
				return fmt.Errorf("key %x: not a test key", item.Key())
			}
			err := item.Value(func(v []byte) error {
				r, err := decodeStoredTest(id, v)
				if err != nil {
					return fmt.Errorf("test %q: %w", id, err)
				}
				out = append(out, r)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: tests: %w", err)
	}
	slices.SortStableFunc(out, func(a, b TestRecord) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// checkIDs checks a test id and an origin id.
func checkIDs(testID, origin string) error {
	return errors.Join(checkID("test", testID), checkID("origin", origin))
}

// PutSecond stores one second of the results measured by origin in the
// test, in one transaction: when the call returns, the second survives a
// crash (see StoreConfig's "Durability"). A second already stored with the
// same (test, origin, T) is replaced, not merged: a node sends a second
// again only with its complete value. sec stays the caller's.
func (s *Store) PutSecond(testID, origin string, sec *Second) error {
	release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	key, v, err := encodeStoredSecond(testID, origin, sec)
	if err != nil {
		return fmt.Errorf("store: put second: %w", err)
	}
	if err := s.checkRoom(s.writeFloor, len(v)); err != nil {
		return fmt.Errorf("store: put second %d of test %q origin %q: %w", sec.T, testID, origin, err)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return s.set(txn, key, v) }); err != nil {
		return fmt.Errorf("store: put second %d of test %q origin %q: %w", sec.T, testID, origin, err)
	}
	return nil
}

// PutSecondBytes stores one second of origin's results in the test as
// EncodeSecond encoded it (a node's second as it came over the wire), as
// PutSecond does, without encoding it again. It decodes b first and
// refuses what DecodeSecond refuses, and a second other than t: the store
// never holds a value that a read would fail on. b stays the caller's.
func (s *Store) PutSecondBytes(testID, origin string, t int64, b []byte) error {
	release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	if err := checkIDs(testID, origin); err != nil {
		return fmt.Errorf("store: put second: %w", err)
	}
	sec, err := DecodeSecond(b)
	if err == nil && sec.T != t {
		err = fmt.Errorf("holds second %d", sec.T)
	}
	if err == nil {
		err = s.checkRoom(s.writeFloor, len(b))
	}
	if err == nil {
		err = s.db.Update(func(txn *badger.Txn) error { return s.set(txn, secondKey(testID, origin, t), b) })
	}
	if err != nil {
		return fmt.Errorf("store: put second %d of test %q origin %q: %w", t, testID, origin, err)
	}
	return nil
}

// encodeStoredSecond checks the ids and returns the key and value of sec.
func encodeStoredSecond(testID, origin string, sec *Second) (key, value []byte, err error) {
	if err := checkIDs(testID, origin); err != nil {
		return nil, nil, err
	}
	if sec == nil {
		return nil, nil, fmt.Errorf("test %q origin %q: nil second", testID, origin)
	}
	v, err := EncodeSecond(sec)
	if err != nil {
		return nil, nil, fmt.Errorf("test %q origin %q: %w", testID, origin, err)
	}
	return secondKey(testID, origin, sec.T), v, nil
}

// PutSeconds stores several seconds of origin in the test, as PutSecond
// does, in as few transactions as Badger allows (a transaction holds a few
// thousand entries with small options). It checks and encodes every second
// before it writes any; a later second with the same T replaces an earlier
// one. The batch is not atomic as a whole: a crash may keep the first
// transactions of it; each second is kept whole or not at all.
func (s *Store) PutSeconds(testID, origin string, secs []*Second) error {
	release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	type kv struct{ k, v []byte }
	kvs := make([]kv, len(secs))
	size := 0
	for i, sec := range secs {
		k, v, err := encodeStoredSecond(testID, origin, sec)
		if err != nil {
			return fmt.Errorf("store: put seconds: [%d]: %w", i, err)
		}
		kvs[i] = kv{k, v}
		size += len(v)
	}
	if len(kvs) > 0 {
		if err := s.checkRoom(s.writeFloor, size); err != nil {
			return fmt.Errorf("store: put seconds of test %q origin %q: %w", testID, origin, err)
		}
	}
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	inTxn := 0 // entries set in txn
	for i := 0; i < len(kvs); {
		err := s.set(txn, kvs[i].k, kvs[i].v)
		switch {
		case err == nil:
			i++
			inTxn++
			continue
		case errors.Is(err, badger.ErrTxnTooBig) && inTxn > 0:
			if err := txn.Commit(); err != nil {
				return fmt.Errorf("store: put seconds of test %q origin %q: %w", testID, origin, err)
			}
			txn, inTxn = s.db.NewTransaction(true), 0
			continue // retry kvs[i] in the new transaction
		}
		return fmt.Errorf("store: put seconds of test %q origin %q: [%d]: %w", testID, origin, i, err)
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("store: put seconds of test %q origin %q: %w", testID, origin, err)
	}
	return nil
}

// Series returns the seconds of origin in the test with T in [from, to]
// (to < 0: no upper bound; a negative from counts from 0), as they were
// stored, unmerged, with origin's error samples (which are not kept per
// second). A test or origin without data gives an empty Series. A value that
// does not decode is an error that names its second.
func (s *Store) Series(testID, origin string, from, to int64) (*Series, error) {
	release, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	if err := checkIDs(testID, origin); err != nil {
		return nil, fmt.Errorf("store: series: %w", err)
	}
	from = max(from, 0)
	out := NewSeries()
	err = s.db.View(func(txn *badger.Txn) error {
		if to < 0 || from <= to {
			if err := s.readSeconds(txn, testID, origin, from, to, out); err != nil {
				return err
			}
		}
		return readSamples(txn, testID, origin, out)
	})
	if err != nil {
		return nil, fmt.Errorf("store: series of test %q origin %q: %w", testID, origin, err)
	}
	return out, nil
}

// readSeconds adds the seconds of [from, to] to out.
func (s *Store) readSeconds(txn *badger.Txn, testID, origin string, from, to int64, out *Series) error {
	prefix := originPrefix(kindSecond, testID, origin)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 64})
	defer it.Close()
	for it.Seek(secondKey(testID, origin, from)); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		k := item.Key()
		if len(k) != len(prefix)+8 {
			return fmt.Errorf("key %x: not a second key", k)
		}
		u := binary.BigEndian.Uint64(k[len(prefix):])
		if u > math.MaxInt64 {
			return fmt.Errorf("key %x: second %d out of range", k, u)
		}
		t := int64(u)
		if to >= 0 && t > to {
			break
		}
		err := item.Value(func(v []byte) error {
			sec, err := DecodeSecond(v) // copies what it keeps: v is Badger's
			if err != nil {
				return fmt.Errorf("corrupt second %d: %w", t, err)
			}
			if sec.T != t {
				return fmt.Errorf("corrupt second %d: holds second %d", t, sec.T)
			}
			out.Seconds[t] = sec
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// readSamples sets out's samples to those stored for origin, if any.
func readSamples(txn *badger.Txn, testID, origin string, out *Series) error {
	item, err := txn.Get(originPrefix(kindSamples, testID, origin))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return item.Value(func(v []byte) error {
		ser, err := DecodeSeries(v)
		if err != nil {
			return fmt.Errorf("corrupt samples: %w", err)
		}
		if len(ser.Seconds) != 0 {
			return errors.New("corrupt samples: holds seconds")
		}
		out.Samples = ser.Samples
		return nil
	})
}

// Origins returns, sorted, the ids of the nodes with seconds or error
// samples stored for the test.
func (s *Store) Origins(testID string) ([]string, error) {
	release, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	if err := checkID("test", testID); err != nil {
		return nil, fmt.Errorf("store: origins: %w", err)
	}
	var out []string
	err = s.db.View(func(txn *badger.Txn) error {
		for _, kind := range []byte{kindSecond, kindSamples} {
			prefix := testResultsPrefix(kind, testID)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			for it.Seek(prefix); it.ValidForPrefix(prefix); {
				rest := it.Item().Key()[len(prefix):]
				if len(rest) == 0 { // a drop marker (disk.go), not an origin
					it.Next()
					continue
				}
				origin, _, ok := parseID(rest)
				if !ok {
					it.Close()
					return fmt.Errorf("key %x: bad origin id", it.Item().Key())
				}
				out = append(out, origin)
				// Skip the origin's other seconds: its keys are its prefix
				// and 8 bytes, and a T's first byte is below 0x80.
				it.Seek(append(appendID(slices.Clone(prefix), origin), 0xff))
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: origins of test %q: %w", testID, err)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// PutSamples adds example error messages of origin in the test to those
// already stored, keeping per class the MaxSamples smallest distinct
// messages as Series.AddSample does (which also clips long messages). So
// sending the same samples twice, or a node's whole set each time, is
// harmless. The set's retention restarts.
func (s *Store) PutSamples(testID, origin string, samples map[string][]string) error {
	release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	if err := checkIDs(testID, origin); err != nil {
		return fmt.Errorf("store: put samples: %w", err)
	}
	if len(samples) == 0 {
		return nil
	}
	if err := s.checkRoom(s.writeFloor, 0); err != nil { // a sample set is a few KiB at most
		return fmt.Errorf("store: put samples of test %q origin %q: %w", testID, origin, err)
	}
	key := originPrefix(kindSamples, testID, origin)
	for range txnRetries {
		err = s.db.Update(func(txn *badger.Txn) error {
			cur := NewSeries()
			if err := readSamples(txn, testID, origin, cur); err != nil {
				return err
			}
			for class, msgs := range samples {
				for _, m := range msgs {
					cur.AddSample(class, m)
				}
			}
			v, err := EncodeSeries(&Series{Samples: cur.Samples})
			if err != nil {
				return err
			}
			return s.set(txn, key, v)
		})
		if !errors.Is(err, badger.ErrConflict) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("store: put samples of test %q origin %q: %w", testID, origin, err)
	}
	return nil
}

// DeleteTest removes the test's record, seconds and samples; a test that
// does not exist is not an error. It is not atomic: it deletes the results
// first and the record last, so that a test whose deletion was cut short
// (by a crash) is still listed and can be deleted again. Results written
// for the test while it runs may survive it: stop writing first.
func (s *Store) DeleteTest(id string) error {
	release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	if err := checkID("test", id); err != nil {
		return fmt.Errorf("store: delete test: %w", err)
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	err = s.db.View(func(txn *badger.Txn) error {
		for _, kind := range resultKinds {
			prefix := testResultsPrefix(kind, id)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
				if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
					it.Close()
					return err
				}
			}
			it.Close()
		}
		return nil
	})
	if err == nil {
		err = wb.Flush()
	}
	if err == nil {
		err = s.db.Update(func(txn *badger.Txn) error { return txn.Delete(testKey(id)) })
	}
	if err != nil {
		return fmt.Errorf("store: delete test %q: %w", id, err)
	}
	return nil
}
