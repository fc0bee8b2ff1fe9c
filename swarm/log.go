package swarm

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p/gologshim"
)

// memberlistLog turns memberlist's "[LEVEL] memberlist: message" lines
// into structured records, and says what a decryption failure means.
type memberlistLog struct{ log *slog.Logger }

func (w *memberlistLog) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{
		"[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelInfo, "[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError,
	} {
		if i := strings.Index(line, prefix); i >= 0 {
			level = l
			line = strings.TrimSpace(line[i+len(prefix):])
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	attrs := []any{"lib", "memberlist"}
	if strings.Contains(line, "use of closed network connection") {
		level = slog.LevelDebug // probes in flight while the node shuts down
	}
	if strings.HasPrefix(line, "Conflicting address for") {
		level = slog.LevelDebug // repeated at every gossip; conflicts.NotifyConflict says it once, plainly
	}
	if hint := keyHint(line); hint != "" {
		level = slog.LevelWarn
		attrs = append(attrs, "hint", hint)
	}
	w.log.Log(context.Background(), level, line, attrs...)
	return len(p), nil
}

// keyHint explains memberlist's errors that come from a fleet key mismatch.
func keyHint(msg string) string {
	switch {
	case strings.Contains(msg, "no installed keys could decrypt"):
		return "a node with a different fleet key tried to talk to us (or we to it): refused"
	case strings.Contains(msg, "encryption is configured but remote state is not encrypted"),
		strings.Contains(msg, "not encrypted"):
		return "a node without a fleet key tried to join this private fleet: refused"
	case strings.Contains(msg, "Remote state is encrypted and encryption is not configured"),
		strings.Contains(msg, "encryption is not configured"):
		return "a node with a fleet key tried to talk to this open fleet: refused; give this node the same --fleet-key"
	}
	return ""
}

// levelHandler drops records below min.
type levelHandler struct {
	min slog.Level
	h   slog.Handler
}

func (l levelHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= l.min && l.h.Enabled(ctx, lv)
}
func (l levelHandler) Handle(ctx context.Context, r slog.Record) error { return l.h.Handle(ctx, r) }
func (l levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return levelHandler{l.min, l.h.WithAttrs(as)}
}
func (l levelHandler) WithGroup(g string) slog.Handler { return levelHandler{l.min, l.h.WithGroup(g)} }

var libraryLogOnce sync.Once

// setLibraryLogger routes go-libp2p's logs to the first swarm's logger, at
// min and above. go-libp2p reads the handler once per subsystem, process
// wide, so later swarms in the same process share the first one's.
func setLibraryLogger(l *slog.Logger, min slog.Level) {
	libraryLogOnce.Do(func() {
		gologshim.SetDefaultHandler(levelHandler{min: min, h: l.Handler()})
	})
}

// libraryLogger is the logger for GossipSub, which takes one per instance.
func libraryLogger(l *slog.Logger, min slog.Level) *slog.Logger {
	return slog.New(levelHandler{min: min, h: l.Handler()}).With("lib", "gossipsub")
}
