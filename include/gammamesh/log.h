/*
 * log.h: leveled, per-subsystem, structured logging to stderr.
 *
 * One line per event, either logfmt-style text
 *
 *     ts=2026-01-02T03:04:05.678Z level=info sub=config msg="snapshot built" services=3 routes=7
 *
 * or one JSON object per line (--log-format=json)
 *
 *     {"ts":"2026-01-02T03:04:05.678Z","level":"info","sub":"config","msg":"snapshot built",
 *      "services":3,"routes":7}
 *
 * Log through the GM_LOG_* macros only. They test the level first and evaluate no argument when
 * the line is disabled, so a trace line costs one relaxed atomic load on the data path:
 *
 *     GM_LOG_INFO("config", "snapshot built", "services=%d routes=%d", ns, nr);
 *     GM_LOG_WARN("admin", "listener closed");
 *
 * The third argument, when present, must be a string literal of space-separated key=value
 * fragments with printf conversions. Each value is formatted on its own, so the text format
 * quotes and escapes exactly the values that need it (spaces, quotes, '=', control bytes) and the
 * JSON format emits a value made of a single integer or floating conversion as a JSON number and
 * everything else as a JSON string. Write no quotes in the fragment yourself; a bare word without
 * '=' is written as-is (text) or as "word":true (JSON).
 *
 * Subsystems are short lower-case words ("config", "admin", "conn", "hbone", "route") naming the
 * part of the daemon that logs; each may have its own level ("info,hbone=trace").
 *
 * Threads: every function here may be called from any thread. A line is built in a stack
 * buffer of GM_LOG_LINE_MAX bytes (longer lines are cut and end in "…") and handed to the sink
 * in a single write(2); the logger never takes a lock on the write path and never waits beyond
 * that write (a sink that would block, e.g. a full non-blocking pipe, drops the line).
 *
 * Secrets: NEVER pass private keys, key or certificate PEM, bearer tokens, Authorization or
 * Cookie header values, or settings marked GM_SETTING_SECRET to these macros, at any level.
 * Log identities (SPIFFE IDs), certificate serials and expiry times instead.
 */
#ifndef GAMMAMESH_LOG_H
#define GAMMAMESH_LOG_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Severity of a line, and a subsystem's threshold: a line is written iff level <= threshold. */
enum gm_log_level {
    GM_LOG_LEVEL_OFF = 0, /* threshold only: write nothing */
    GM_LOG_LEVEL_ERROR,   /* an operation failed and was abandoned */
    GM_LOG_LEVEL_WARN,    /* something is wrong but the daemon carries on */
    GM_LOG_LEVEL_INFO,    /* lifecycle events and access logs */
    GM_LOG_LEVEL_DEBUG,   /* decisions, for an operator chasing a problem */
    GM_LOG_LEVEL_TRACE,   /* per-packet, per-frame detail */
    GM_LOG_LEVEL__MAX
};

/* Output format of every line. */
enum gm_log_format {
    GM_LOG_FORMAT_TEXT = 0, /* logfmt-style key=value */
    GM_LOG_FORMAT_JSON,     /* one JSON object per line */
    GM_LOG_FORMAT__MAX
};

#define GM_LOG_LINE_MAX    8192 /* bytes in one line, newline included */
#define GM_LOG_SUBSYS_MAX  32   /* distinct subsystem names that can carry their own level */
#define GM_LOG_SUBSYS_NAME 24   /* bytes in a subsystem name, NUL included */

#define GM_LOG(level, sub, msg, ...)                                                               \
    do {                                                                                           \
        if (gm_log_enabled((level), (sub)))                                                        \
            gm_log_emit((level), (sub), (msg), " " __VA_ARGS__);                                   \
    } while (0)

/*
 * A line that a peer can trigger once per connection or request (a refused handshake, an
 * overload refusal) must not let a flood of them flood the log: GM_LOG_LIMITED writes at most
 * GM_LOG_LIMIT_LINES lines per call site in each GM_LOG_LIMIT_WINDOW_MS window. The next line
 * that goes out after some were dropped is preceded by one "similar lines suppressed" line
 * (suppressed_msg=…, count=…). Arguments are evaluated only for lines that go out.
 */
#define GM_LOG_LIMIT_LINES     10
#define GM_LOG_LIMIT_WINDOW_MS 10000

struct gm_log_limit {
    atomic_uint_fast64_t window; /* index of the current window */
    atomic_uint count;           /* lines taken in it */
    atomic_uint dropped;         /* lines dropped since the last one that went out */
};

/* Lines the logger did not write: the sink refused them (a full non-blocking pipe, an error),
 * or a GM_LOG_LIMITED call site was over its budget. Totals since start, any thread. */
unsigned long long gm_log_lines_unwritten(void);
unsigned long long gm_log_lines_suppressed(void);

/* True when a line may go out now; *dropped is then the number dropped since the last one. */
bool gm_log_limit_take(struct gm_log_limit *l, unsigned *dropped);
/* The same at a given monotonic time in ms (tests). */
bool gm_log_limit_take_at(struct gm_log_limit *l, uint64_t now_ms, unsigned *dropped);

#define GM_LOG_LIMITED(level, sub, msg, ...)                                                       \
    do {                                                                                           \
        static struct gm_log_limit gm_log_limit_;                                                  \
        unsigned gm_log_dropped_;                                                                  \
        if (gm_log_enabled((level), (sub)) &&                                                      \
            gm_log_limit_take(&gm_log_limit_, &gm_log_dropped_)) {                                 \
            if (gm_log_dropped_ > 0)                                                               \
                gm_log_emit((level), (sub), "similar lines suppressed",                            \
                            " suppressed_msg=%s count=%u", (msg), gm_log_dropped_);                \
            gm_log_emit((level), (sub), (msg), " " __VA_ARGS__);                                   \
        }                                                                                          \
    } while (0)

#define GM_LOG_WARN_LIMITED(sub, msg, ...) GM_LOG_LIMITED(GM_LOG_LEVEL_WARN, sub, msg, __VA_ARGS__)

#define GM_LOG_ERROR(sub, msg, ...) GM_LOG(GM_LOG_LEVEL_ERROR, sub, msg, __VA_ARGS__)
#define GM_LOG_WARN(sub, msg, ...)  GM_LOG(GM_LOG_LEVEL_WARN, sub, msg, __VA_ARGS__)
#define GM_LOG_INFO(sub, msg, ...)  GM_LOG(GM_LOG_LEVEL_INFO, sub, msg, __VA_ARGS__)
#define GM_LOG_DEBUG(sub, msg, ...) GM_LOG(GM_LOG_LEVEL_DEBUG, sub, msg, __VA_ARGS__)
#define GM_LOG_TRACE(sub, msg, ...) GM_LOG(GM_LOG_LEVEL_TRACE, sub, msg, __VA_ARGS__)

/* The most verbose threshold of any subsystem; internal to the fast path of gm_log_enabled(). */
extern atomic_int gm_log__max;

/* Internal: the per-subsystem part of gm_log_enabled(). */
bool gm_log_enabled_slow(enum gm_log_level level, const char *sub);

/* True when a line of `level` from subsystem `sub` (NULL: the default) would be written. */
static inline bool gm_log_enabled(enum gm_log_level level, const char *sub)
{
    if ((int)level > atomic_load_explicit(&gm_log__max, memory_order_relaxed))
        return false;
    return gm_log_enabled_slow(level, sub);
}

/*
 * Formats and writes one line unconditionally; use the GM_LOG_* macros instead. kvfmt is the
 * key=value fragment described above (the macros prefix it with a space).
 */
void gm_log_emit(enum gm_log_level level, const char *sub, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Formats one line (with its newline and NUL) into buf of cap bytes, cap >= 64, using the
 * timestamp *ts (CLOCK_REALTIME). Returns the length without the NUL. For tests and for callers
 * that want a line without writing it. Output longer than cap - 1 is truncated with "…".
 */
size_t gm_log_render(char *buf, size_t cap, enum gm_log_format fmt, const struct timespec *ts,
                     enum gm_log_level level, const char *sub, const char *msg, const char *kvfmt,
                     ...) __attribute__((format(printf, 8, 9)));
size_t gm_log_vrender(char *buf, size_t cap, enum gm_log_format fmt, const struct timespec *ts,
                      enum gm_log_level level, const char *sub, const char *msg, const char *kvfmt,
                      va_list ap) __attribute__((format(printf, 8, 0)));

/*
 * Applies a level spec: comma-separated items, each either a level ("info": the default
 * threshold) or sub=level ("hbone=trace"). Levels: off, error, warn (or warning), info, debug,
 * trace, in any case. Items are merged into the current configuration: the default and the
 * named subsystems change, other subsystems keep their level. All or nothing: returns 0, or
 * -EINVAL for a malformed spec (nothing changes), -ENOSPC when more than GM_LOG_SUBSYS_MAX
 * subsystems would be named. The spec is borrowed.
 */
int gm_log_set_level(const char *spec);

/* Like gm_log_set_level() but only validates: 0 or -EINVAL. */
int gm_log_check_level(const char *spec);

/* Back to the built-in configuration: default info, no subsystem levels. */
void gm_log_reset(void);

/*
 * Writes the current configuration as a spec that gm_log_set_level() accepts ("info,hbone=trace":
 * the default first, then each subsystem with its own level, in the order they were first named).
 * Returns the length, or -ENOSPC when it does not fit in len bytes.
 */
int gm_log_get_level(char *buf, size_t len);

/* The threshold that applies to subsystem sub (NULL: the default). */
enum gm_log_level gm_log_level_of(const char *sub);

/* "error", "warn", …; "off" for GM_LOG_LEVEL_OFF, "?" out of range. Static string. */
const char *gm_log_level_name(enum gm_log_level level);

/* Sets the format of every following line. */
void gm_log_set_format(enum gm_log_format fmt);
enum gm_log_format gm_log_get_format(void);

/* "text" or "json" to *out: 0 or -EINVAL. */
int gm_log_parse_format(const char *name, enum gm_log_format *out);

/* Redirects lines to fd (default 2); the caller keeps ownership of fd. For tests. */
void gm_log_set_fd(int fd);

#endif
