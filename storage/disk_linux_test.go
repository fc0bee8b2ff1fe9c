package storage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The full-disk test mounts a small tmpfs, fills it while a store on it
// runs, and runs the store in a child process (this test binary again), so
// that a SIGBUS shows as a child killed by it rather than as the end of
// the test run.
const (
	fullDiskEnv     = "SWARM_DISK_TESTS" // "1": run TestFullDisk (it mounts a file system)
	fullDiskDirEnv  = "LOADSWARM_STORE_FULLDISK_DIR"
	fullDiskModeEnv = "LOADSWARM_STORE_FULLDISK_MODE" // "fill, then write" or "fill while writing"

	fullDiskFSSize  = 256 * mib
	fullDiskMinFree = 128 * mib // write floor 32 MiB, as 512 MiB gives 128 MiB
)

// TestFullDiskChild is the child of TestFullDisk; it is skipped unless run
// by it. It opens a store in the mounted file system, writes seconds,
// fills the file system with another file (in mode "fill while writing",
// while a goroutine keeps writing seconds), writes on, and closes. It
// prints "key value" lines for the parent; "acked N" says seconds 0..N-1
// were acknowledged.
func TestFullDiskChild(t *testing.T) {
	mnt := os.Getenv(fullDiskDirEnv)
	if mnt == "" {
		t.Skip("the child of TestFullDisk")
	}
	fail := func(f string, a ...any) {
		fmt.Printf("error "+f+"\n", a...)
		os.Exit(3)
	}
	s, err := OpenStore(StoreConfig{Dir: filepath.Join(mnt, "store"), Small: true, MinFreeBytes: fullDiskMinFree,
		Logger: slog.New(slog.NewTextHandler(os.Stdout, nil))})
	if err != nil {
		fail("%v", err)
	}
	if err := s.PutTest(TestRecord{ID: "full", State: "running", Created: time.Now()}); err != nil {
		fail("%v", err)
	}
	fill := func() {
		f, err := os.Create(filepath.Join(mnt, "filler"))
		if err != nil {
			fail("%v", err)
		}
		for _, chunk := range []int{1 << 20, 4 << 10} {
			buf := make([]byte, chunk)
			for {
				if _, err := f.Write(buf); err != nil {
					if !errors.Is(err, syscall.ENOSPC) {
						fail("filler: %v", err)
					}
					break
				}
			}
		}
		f.Close()
		free, _ := freeSpace(mnt)
		fmt.Println("free", free)
	}
	var acked, refused atomic.Int64 // seconds 0..acked-1 acknowledged; writes refused with ErrNoRoom
	put := func() {
		T := acked.Load()
		switch err := s.PutSecond("full", "self", seededSecond(T)); {
		case err == nil:
			acked.Add(1)
		case errors.Is(err, ErrNoRoom):
			if refused.Add(1) == 1 {
				fmt.Println("refusal", err)
			}
		default:
			fail("put second %d: %v", T, err)
		}
	}
	switch mode := os.Getenv(fullDiskModeEnv); mode {
	case "fill, then write":
		for range 100 {
			put()
		}
		fill()
	case "fill while writing":
		done := make(chan struct{})
		go func() {
			defer close(done)
			for refused.Load() == 0 {
				put()
			}
		}()
		fill()
		<-done
	default:
		fail("mode %q", mode)
	}
	for range 200 {
		put()
	}
	fmt.Println("room", s.Room())
	fmt.Println("maintain", s.Maintain())
	if err := s.PutTest(TestRecord{ID: "full", State: "done"}); !errors.Is(err, ErrNoRoom) {
		fail("PutTest on a full disk: %v", err)
	}
	fmt.Println("acked", acked.Load())
	fmt.Println("refused", refused.Load())
	fmt.Println("close", s.Close())
	os.Exit(0)
}

// TestFullDisk checks that a store whose disk fills refuses writes with
// ErrNoRoom, closes without SIGBUS, and keeps every second it
// acknowledged. Without the store's floors the first write into the full
// file system kills the process with SIGBUS (Badger writes its value log
// through mmap).
func TestFullDisk(t *testing.T) {
	if os.Getenv(fullDiskEnv) != "1" {
		t.Skip("mounts a tmpfs: set " + fullDiskEnv + "=1 to run (as root)")
	}
	for _, mode := range []string{"fill, then write", "fill while writing"} {
		t.Run(mode, func(t *testing.T) {
			mnt := t.TempDir()
			if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, fmt.Sprintf("size=%d", fullDiskFSSize)); err != nil {
				t.Skipf("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): %v", err)
			}
			t.Cleanup(func() {
				if err := syscall.Unmount(mnt, 0); err != nil {
					t.Errorf("unmount %s: %v", mnt, err)
				}
			})
			cmd := exec.Command(os.Args[0], "-test.run=^TestFullDiskChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), fullDiskDirEnv+"="+mnt, fullDiskModeEnv+"="+mode)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				t.Logf("child: %s", sc.Text())
				if k, v, ok := strings.Cut(sc.Text(), " "); ok {
					got[k] = v
				}
			}
			if err := cmd.Wait(); err != nil {
				// The Go runtime turns a SIGBUS into a fatal error (exit
				// status 2) and prints the signal.
				if bytes.Contains(stderr.Bytes(), []byte("signal SIGBUS")) {
					t.Fatalf("the child died of SIGBUS:\n%s", firstLines(stderr.String(), 12))
				}
				t.Fatalf("child: %v (%s)\n%s", err, got["error"], firstLines(stderr.String(), 30))
			}
			if got["close"] != "<nil>" {
				t.Errorf("child: Close = %s", got["close"])
			}
			if n, err := strconv.Atoi(got["refused"]); err != nil || n < 200 {
				t.Errorf("child: %s writes refused, want every one after the fill", got["refused"])
			}
			if !strings.HasPrefix(got["room"], "disk nearly full: ") || !strings.HasPrefix(got["refusal"], "store: put second ") {
				t.Errorf("child: room %q, refusal %q; want the reasons", got["room"], got["refusal"])
			}
			acked, err := strconv.ParseInt(got["acked"], 10, 64)
			if err != nil || acked == 0 {
				t.Fatalf("child acknowledged %q seconds", got["acked"])
			}

			// With room again, every acknowledged second is there, and
			// the store writes and keeps its reserve again.
			if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
				t.Fatal(err)
			}
			s := openTestStore(t, filepath.Join(mnt, "store"), func(c *StoreConfig) { c.MinFreeBytes = fullDiskMinFree })
			ser := mustSeries(t, s, "full", "self", 0, -1)
			if n := int64(len(ser.Seconds)); n != acked {
				t.Errorf("%d seconds after reopening, %d acknowledged", n, acked)
			}
			for T := range acked {
				if sec := ser.Seconds[T]; sec == nil || !bytes.Equal(mustEncodeSecond(t, sec), mustEncodeSecond(t, seededSecond(T))) {
					t.Fatalf("second %d lost or changed", T)
				}
			}
			mustPutSecond(t, s, "full", "self", seededSecond(acked))
			if err := s.Room(); err != nil {
				t.Errorf("Room with the disk empty again: %v", err)
			}
			if _, err := os.Stat(filepath.Join(mnt, "store", reserveName)); err != nil {
				t.Errorf("reserve not made again: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

// firstLines returns the first n lines of s.
func firstLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	return strings.Join(lines[:min(n, len(lines))], "")
}
