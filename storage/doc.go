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
package storage
