package turnserver

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// levelTrace is below slog's Debug: pion's trace output (every STUN
// message) only shows when a handler asks for it explicitly.
const levelTrace = slog.LevelDebug - 4

// slogFactory hands pion a logger that writes to slog. pion's Info output
// goes to Debug: it reports routine events (one line per packet from a peer
// without permission, for instance), which would flood a server's log.
type slogFactory struct{ log *slog.Logger }

func (f slogFactory) NewLogger(scope string) logging.LeveledLogger {
	return slogLogger{f.log.With("pion", scope)}
}

type slogLogger struct{ log *slog.Logger }

func (l slogLogger) at(level slog.Level, msg string) { l.log.Log(context.Background(), level, msg) }

// atf formats only for enabled levels: pion traces every STUN message.
func (l slogLogger) atf(level slog.Level, format string, args []any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (l slogLogger) Trace(msg string)                  { l.at(levelTrace, msg) }
func (l slogLogger) Tracef(format string, args ...any) { l.atf(levelTrace, format, args) }
func (l slogLogger) Debug(msg string)                  { l.at(slog.LevelDebug, msg) }
func (l slogLogger) Debugf(format string, args ...any) { l.atf(slog.LevelDebug, format, args) }
func (l slogLogger) Info(msg string)                   { l.at(slog.LevelDebug, msg) }
func (l slogLogger) Infof(format string, args ...any)  { l.atf(slog.LevelDebug, format, args) }
func (l slogLogger) Warn(msg string)                   { l.at(slog.LevelWarn, msg) }
func (l slogLogger) Warnf(format string, args ...any)  { l.atf(slog.LevelWarn, format, args) }
func (l slogLogger) Error(msg string)                  { l.at(slog.LevelError, msg) }
func (l slogLogger) Errorf(format string, args ...any) { l.atf(slog.LevelError, format, args) }
