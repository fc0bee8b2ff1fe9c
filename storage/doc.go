// Package storage holds the results of load tests in a form that merges
// exactly.
//
// Every node of a swarm records its share of a test into per-second results:
// a Second holds, for each Dim (request step, status class, error class), a
// Bucket of exact Counters and two HDR histograms, Latency (from the
// arrival's scheduled time, so coordinated omission is corrected) and
// Service (from the actual send). A Series is a test's seconds plus a few
// error samples.
//
// Why histograms: a percentile cannot be computed from other percentiles.
// The p99 of two nodes is not the average (nor the max) of their p99s, so
// results are never summarized before they are merged. Merging two HDR
// histograms of the same parameters adds their counts slot by slot, which is
// exact: the merged histogram is the one that would have recorded every
// duration itself, and its quantiles equal those of all the raw durations
// within the histogram's precision (3 significant digits: 0.1%). Counters are
// summed. Merge is associative and commutative, so results can be merged in
// any order and grouping, by any node. Merges that cannot be exact (other
// histogram parameters, overflow, seconds with different T) are errors;
// nothing is dropped silently. Summarize merges first and computes the
// report numbers from the merged histograms last.
//
// Units: histograms record microseconds from 1 µs to 60 s (Hist*
// constants); shorter durations count as 1 µs, longer ones as 60 s and are
// counted by Histogram.Clamped. The API takes and returns time.Duration;
// Summary reports milliseconds as float64. T is whole seconds since the
// test's start, from 0. Quantiles are fractions from 0 to 1.
//
// Memory: a histogram to record into (NewHistogram) is a dense array of
// 139 KB so that recording is a few instructions; histograms kept in a Series
// or decoded are sparse, a few KB at most. See Histogram.
//
// Encoding: EncodeSecond, EncodeSeries and Histogram's CBOR methods write a
// deterministic, sparse CBOR encoding; the decoders check sizes, depth,
// every count and every index, and return errors that say where the input is
// wrong; they never panic. Histograms and merges are not safe for concurrent
// use; callers lock.
//
// Store keeps a node's test records and per-second results (its own, and
// replicas of other nodes') in Badger on disk, with a TTL; see store.go for
// the key schema and for what a crash can lose.
//
// Disk. Badger writes its value log, write-ahead logs and tables through
// mmap, into files it extends with holes; on a full file system the kernel
// answers such a write with SIGBUS, which kills the process (on shutdown,
// as memtables are flushed, or at the next write). So the store keeps
// Badger off a full disk (disk.go):
//
//   - Room refuses new tests below StoreConfig.MinFreeBytes free (512 MiB).
//   - Writes of results are refused with ErrNoRoom below a quarter of it
//     (128 MiB, at least the reserve), test records below the reserve. The
//     free space is read (statfs, about 2 µs) at every write: a reading
//     kept for a second would let a fast writer elsewhere (a copy does
//     1 GB/s) fill the gap.
//   - A reserve file (RESERVE in Dir; with small options 12 MiB: every
//     memtable and two tables) is kept, and Close deletes it when less is
//     free, so that Badger can flush. TestFullDisk (SWARM_DISK_TESTS=1, as
//     root) fills a tmpfs under a running store: without the floors the
//     next write dies of SIGBUS, without the reserve Close does.
//
// Not covered: a process that takes the last bytes between a check and
// Badger's write, and the flushes and compactions Badger starts by itself
// after our last write, on a disk another process has filled since.
//
// Space comes back through Maintain, run by a loop every 10 minutes. Badger
// hides expired and deleted keys at once but frees their space only once a
// compaction drops them, which a quiet store never runs, and value-log GC
// then rewrites the files they were in, a file at a time and never the
// newest (so value-log files are 16 MiB with small options, not 1 GiB).
// Maintain drops the keys of every test with none alive (DropPrefix
// compacts them away and tells the GC), evicts whole finished tests, oldest
// first, while Usage is over StoreConfig.MaxBytes, and runs the GC. Usage
// counts allocated blocks, as du does; Badger's DB.Size counts holes.
package storage
