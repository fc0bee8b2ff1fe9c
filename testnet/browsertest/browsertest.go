// Package browsertest drives a real headless Chromium for the dashboard's
// and the report's tests, through chromedp. It is a test helper: it skips
// a test, with the reason, where no browser is installed.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// SkipReason says why a browser test skips and how to run it.
const SkipReason = "no Chromium: install Debian's chromium (.ci/run does: apt-get install chromium) or set SWARM_CHROMIUM to a Chrome or Chromium binary"

// Binary finds the browser: $SWARM_CHROMIUM, else chromium, chromium-browser
// or google-chrome on the PATH; "" when there is none.
func Binary() string {
	if b := os.Getenv("SWARM_CHROMIUM"); b != "" {
		return b
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Browser is one headless browser with one tab, and what the tab's pages
// logged and asked for.
type Browser struct {
	ctx context.Context

	mu       sync.Mutex
	problems []string // console errors, uncaught exceptions, error log entries
	requests []string // every URL a page asked for
}

// Start starts a browser, or skips the test when there is none. It is
// closed when the test ends.
func Start(t testing.TB, width, height int) *Browser {
	t.Helper()
	bin := Binary()
	if bin == "" {
		t.Skip(SkipReason)
	}
	// Chromium now and then dies before it gives its DevTools address (on
	// a loaded machine, /dev/shm short); that is the host's hiccup, not
	// the page's, so a failed start is tried once more, afresh.
	var err error
	for range 2 {
		var b *Browser
		if b, err = start(t, bin, width, height); err == nil {
			return b
		}
		t.Logf("start %s: %v", bin, err)
	}
	t.Fatalf("start %s: %v", bin, err)
	return nil
}

// start launches one browser and opens a blank page in it.
func start(t testing.TB, bin string, width, height int) (*Browser, error) {
	// The flags keep Chromium off the network: this machine's is closed,
	// and a test must not depend on Google's hosts.
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox, // root in CI containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true), // containers give /dev/shm 64 MB
		chromedp.Flag("hide-scrollbars", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &Browser{}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(b.listen))
	b.ctx = ctx
	// The first run starts the browser; it takes the context without a
	// deadline, which would end the browser with it.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		cancel()
		cancelAlloc()
		return nil, err
	}
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return b, nil
}

func (b *Browser) listen(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range e.Args {
				args = append(args, strings.Trim(string(a.Value), `"`)+a.Description)
			}
			b.problems = append(b.problems, "console."+string(e.Type)+": "+strings.Join(args, " "))
		}
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += " " + d.Exception.Description
		}
		b.problems = append(b.problems, fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber, msg))
	case *log.EventEntryAdded:
		if e.Entry.Level == log.EntryLevelError {
			b.problems = append(b.problems, fmt.Sprintf("log %s: %s (%s)", e.Entry.Source, e.Entry.Text, e.Entry.URL))
		}
	case *network.EventRequestWillBeSent:
		b.requests = append(b.requests, e.Request.URL)
	}
}

// Problems are the errors the pages logged or threw so far.
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// Requests are the URLs the pages asked for so far.
func (b *Browser) Requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.requests...)
}

// Do runs actions in the tab, failing the test on an error.
func (b *Browser) Do(t testing.TB, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v (problems so far: %v)", err, b.Problems())
	}
}

// Eval evaluates a JavaScript expression in b's page.
func Eval[T any](t testing.TB, b *Browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("browser: evaluate %s: %v (problems so far: %v)", expr, err, b.Problems())
	}
	return v
}

// WaitFor polls a JavaScript expression until it is true, failing the
// test with what describe evaluates to at the deadline.
func (b *Browser) WaitFor(t testing.TB, timeout time.Duration, what, expr, describe string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			state := ""
			if describe != "" {
				ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
				state, _ = chromedp.Run(ctx, chromedp.Evaluate[string]("String("+describe+")"))
				cancel()
			}
			t.Fatalf("browser: waited %s for %s: %v; state: %s; problems: %v", timeout, what, err, state, b.Problems())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Screenshot writes a PNG of the page's viewport, or of the whole page.
func (b *Browser) Screenshot(t testing.TB, path string, fullPage bool) {
	t.Helper()
	act := chromedp.CaptureScreenshot()
	if fullPage {
		act = chromedp.FullScreenshot(100) // 100: PNG
	}
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, act)
	if err != nil {
		t.Fatalf("browser: screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}
