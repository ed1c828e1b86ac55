/*
 * log.c: leveled structured logging (see gammamesh/log.h).
 *
 * Levels live in atomics so that any thread can test them without a lock. Subsystem names are
 * appended to a fixed table and never removed or renamed: a reader loads the count with acquire
 * semantics and may then read that many names. Writers of the configuration (set, reset) take
 * one mutex among themselves.
 *
 * A line is rendered into a caller-provided buffer by a small builder that drops whatever does
 * not fit, never splits an escape or a UTF-8 sequence, and keeps room for the ending ("…", the
 * closing quote and brace, the newline).
 */
#include "gammamesh/log.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <unistd.h>

#include "gammamesh/util.h"

#define LB_RESERVE 32  /* bytes kept for the ending of a line */
#define KEY_MAX    256 /* bytes of one formatted key */
#define ELLIPSIS   "\xe2\x80\xa6"

struct subsys {
    char name[GM_LOG_SUBSYS_NAME];
    atomic_int level; /* threshold, or -1: follow the default */
};

atomic_int gm_log__max = GM_LOG_LEVEL_INFO;
static atomic_int log_default = GM_LOG_LEVEL_INFO;
static atomic_int log_format = GM_LOG_FORMAT_TEXT;
static atomic_int log_fd = 2;
static struct subsys log_subsys[GM_LOG_SUBSYS_MAX];
static atomic_size_t log_nsubsys;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER; /* writers of the level table */

static const char *const level_names[GM_LOG_LEVEL__MAX] = {"off",  "error", "warn",
                                                           "info", "debug", "trace"};

/* ---- level specs ---- */

struct spec {
    int def; /* default threshold, -1 when the spec does not set it */
    size_t n;
    struct {
        char name[GM_LOG_SUBSYS_NAME];
        int level;
    } items[GM_LOG_SUBSYS_MAX];
};

static int level_parse(const char *s, size_t len)
{
    for (int i = 0; i < GM_LOG_LEVEL__MAX; i++) {
        if (strlen(level_names[i]) == len && strncasecmp(s, level_names[i], len) == 0)
            return i;
    }
    if (len == 7 && strncasecmp(s, "warning", 7) == 0)
        return GM_LOG_LEVEL_WARN;
    return -1;
}

static bool subsys_name_valid(const char *s, size_t len)
{
    if (len == 0 || len >= GM_LOG_SUBSYS_NAME || !isalpha((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '_' && c != '-' && c != '.')
            return false;
    }
    return true;
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && isspace((unsigned char)**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

static int spec_add(struct spec *sp, const char *name, size_t len, int level)
{
    char lower[GM_LOG_SUBSYS_NAME];

    for (size_t i = 0; i < len; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    lower[len] = '\0';
    for (size_t i = 0; i < sp->n; i++) {
        if (strcmp(sp->items[i].name, lower) == 0) {
            sp->items[i].level = level;
            return 0;
        }
    }
    if (sp->n == GM_LOG_SUBSYS_MAX)
        return -ENOSPC;
    memcpy(sp->items[sp->n].name, lower, len + 1);
    sp->items[sp->n++].level = level;
    return 0;
}

static int spec_item(struct spec *sp, const char *item, size_t len)
{
    const char *eq = memchr(item, '=', len);
    const char *name = item, *lvl;
    size_t nlen, llen;
    int level;

    trim(&item, &len);
    if (len == 0)
        return -EINVAL;
    if (eq == NULL) {
        sp->def = level_parse(item, len);
        return sp->def < 0 ? -EINVAL : 0;
    }
    nlen = (size_t)(eq - name);
    lvl = eq + 1;
    llen = len - (size_t)(lvl - item);
    trim(&name, &nlen);
    trim(&lvl, &llen);
    level = level_parse(lvl, llen);
    if (level < 0 || !subsys_name_valid(name, nlen))
        return -EINVAL;
    return spec_add(sp, name, nlen, level);
}

static int spec_parse(const char *text, struct spec *sp)
{
    const char *p = text;
    int rc;

    sp->def = -1;
    sp->n = 0;
    if (text == NULL)
        return -EINVAL;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);

        rc = spec_item(sp, p, len);
        if (rc < 0)
            return rc;
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

/* Index of name in the table or -1. Caller holds log_lock or tolerates a concurrent append. */
static int subsys_find(const char *name)
{
    size_t n = atomic_load_explicit(&log_nsubsys, memory_order_acquire);

    for (size_t i = 0; i < n; i++) {
        if (strcmp(log_subsys[i].name, name) == 0)
            return (int)i;
    }
    return -1;
}

/* Called with log_lock held. */
static void recompute_max(void)
{
    size_t n = atomic_load_explicit(&log_nsubsys, memory_order_relaxed);
    int max = atomic_load(&log_default);

    for (size_t i = 0; i < n; i++) {
        int lv = atomic_load(&log_subsys[i].level);
        if (lv > max)
            max = lv;
    }
    atomic_store(&gm_log__max, max);
}

/* Called with log_lock held; the spec has been checked to fit. */
static void spec_apply(const struct spec *sp)
{
    size_t n = atomic_load_explicit(&log_nsubsys, memory_order_relaxed);

    if (sp->def >= 0)
        atomic_store(&log_default, sp->def);
    for (size_t i = 0; i < sp->n; i++) {
        int idx = subsys_find(sp->items[i].name);

        if (idx < 0) {
            memcpy(log_subsys[n].name, sp->items[i].name, sizeof(log_subsys[n].name));
            atomic_store(&log_subsys[n].level, sp->items[i].level);
            atomic_store_explicit(&log_nsubsys, ++n, memory_order_release);
        } else {
            atomic_store(&log_subsys[idx].level, sp->items[i].level);
        }
    }
    recompute_max();
}

int gm_log_check_level(const char *spec)
{
    struct spec sp;

    return spec_parse(spec, &sp) < 0 ? -EINVAL : 0;
}

int gm_log_set_level(const char *spec)
{
    struct spec sp;
    size_t fresh = 0;
    int rc = spec_parse(spec, &sp);

    if (rc < 0)
        return rc;
    pthread_mutex_lock(&log_lock);
    for (size_t i = 0; i < sp.n; i++)
        fresh += subsys_find(sp.items[i].name) < 0;
    if (atomic_load(&log_nsubsys) + fresh > GM_LOG_SUBSYS_MAX) {
        rc = -ENOSPC;
        goto out;
    }
    spec_apply(&sp);
out:
    pthread_mutex_unlock(&log_lock);
    return rc;
}

void gm_log_reset(void)
{
    size_t n;

    pthread_mutex_lock(&log_lock);
    n = atomic_load(&log_nsubsys);
    atomic_store(&log_default, GM_LOG_LEVEL_INFO);
    for (size_t i = 0; i < n; i++)
        atomic_store(&log_subsys[i].level, -1);
    recompute_max();
    pthread_mutex_unlock(&log_lock);
}

int gm_log_get_level(char *buf, size_t len)
{
    size_t n, used;
    int w, rc = 0;

    pthread_mutex_lock(&log_lock);
    n = atomic_load(&log_nsubsys);
    w = snprintf(buf, len, "%s", gm_log_level_name(atomic_load(&log_default)));
    used = (size_t)w;
    for (size_t i = 0; i < n && used < len; i++) {
        int lv = atomic_load(&log_subsys[i].level);
        if (lv < 0)
            continue;
        w = snprintf(buf + used, len - used, ",%s=%s", log_subsys[i].name, gm_log_level_name(lv));
        used += (size_t)w;
    }
    rc = used < len ? (int)used : -ENOSPC;
    pthread_mutex_unlock(&log_lock);
    return rc;
}

enum gm_log_level gm_log_level_of(const char *sub)
{
    int idx = sub ? subsys_find(sub) : -1;

    if (idx >= 0) {
        int lv = atomic_load_explicit(&log_subsys[idx].level, memory_order_relaxed);
        if (lv >= 0)
            return (enum gm_log_level)lv;
    }
    return (enum gm_log_level)atomic_load_explicit(&log_default, memory_order_relaxed);
}

bool gm_log_enabled_slow(enum gm_log_level level, const char *sub)
{
    return level > GM_LOG_LEVEL_OFF && level <= gm_log_level_of(sub);
}

const char *gm_log_level_name(enum gm_log_level level)
{
    if ((unsigned)level >= GM_LOG_LEVEL__MAX)
        return "?";
    return level_names[level];
}

void gm_log_set_format(enum gm_log_format fmt)
{
    atomic_store(&log_format, fmt);
}

enum gm_log_format gm_log_get_format(void)
{
    return (enum gm_log_format)atomic_load(&log_format);
}

int gm_log_parse_format(const char *name, enum gm_log_format *out)
{
    if (name && strcmp(name, "text") == 0)
        *out = GM_LOG_FORMAT_TEXT;
    else if (name && strcmp(name, "json") == 0)
        *out = GM_LOG_FORMAT_JSON;
    else
        return -EINVAL;
    return 0;
}

void gm_log_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
}

/* ---- the line builder ---- */

struct lb {
    char *buf;
    size_t len;
    size_t cap;  /* content stops here; LB_RESERVE more bytes hold the ending */
    bool full;   /* something did not fit: every later append is dropped */
    bool in_str; /* inside a quoted string that the ending must close */
};

/* Appends all of s or, when it does not fit, nothing. */
static void lb_put(struct lb *b, const char *s, size_t n)
{
    if (b->full)
        return;
    if (n > b->cap - b->len) {
        b->full = true;
        return;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
}

/* Appends as much of s as fits. */
static void lb_put_part(struct lb *b, const char *s, size_t n)
{
    size_t room = b->full ? 0 : b->cap - b->len;

    if (n > room) {
        n = room;
        b->full = true;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
}

static void lb_puts(struct lb *b, const char *s)
{
    lb_put(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len, i;
    uint32_t cp, min;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2, min = 0x80;
    else if ((s[0] & 0xf0) == 0xe0)
        len = 3, min = 0x800;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    cp = s[0] & (0x3fu >> (len - 1));
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Byte classes: BYTE_ESCAPE, not copied as-is inside a JSON string (control, '"', '\\', DEL,
 * and bytes >= 0x80, which are checked as UTF-8); BYTE_QUOTE, makes a text value need quotes
 * (also ' ' and '='). */
enum { BYTE_ESCAPE = 1, BYTE_QUOTE = 2 };
static const uint8_t byte_class[256] = {
    [0x00 ... 0x1f] = BYTE_ESCAPE | BYTE_QUOTE,
    [' '] = BYTE_QUOTE,
    ['"'] = BYTE_ESCAPE | BYTE_QUOTE,
    ['='] = BYTE_QUOTE,
    ['\\'] = BYTE_ESCAPE | BYTE_QUOTE,
    [0x7f] = BYTE_ESCAPE | BYTE_QUOTE,
    [0x80 ... 0xff] = BYTE_ESCAPE,
};

static bool plain_ascii(unsigned char c)
{
    return !(byte_class[c] & BYTE_ESCAPE);
}

/*
 * Appends s with JSON string escapes (valid in both formats); invalid UTF-8 becomes U+FFFD.
 */
static void lb_put_escaped(struct lb *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run, ulen;
    char esc[8];

    while (i < n && !b->full) {
        for (run = 0; i + run < n && plain_ascii(p[i + run]); run++)
            ;
        if (run > 0) {
            lb_put_part(b, s + i, run);
            i += run;
            continue;
        }
        if (p[i] == '"' || p[i] == '\\' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t') {
            esc[0] = '\\';
            esc[1] = p[i] == '\n' ? 'n' : p[i] == '\r' ? 'r' : p[i] == '\t' ? 't' : (char)p[i];
            lb_put(b, esc, 2);
            i++;
        } else if (p[i] < 0x80) {
            snprintf(esc, sizeof(esc), "\\u%04x", p[i]);
            lb_put(b, esc, 6);
            i++;
        } else if ((ulen = utf8_len(p + i, n - i)) > 0) {
            lb_put(b, s + i, ulen);
            i += ulen;
        } else {
            lb_put(b, "\xef\xbf\xbd", 3);
            i++;
        }
    }
}

/* Appends prefix (a JSON key and its colon, or nothing) and s as a quoted, escaped string; the
 * prefix and the opening quote go in together or not at all, and a string cut short is closed
 * by lb_finish. */
static void lb_put_field_string(struct lb *b, const char *prefix, const char *s, size_t n)
{
    char start[32];
    size_t pl = strlen(prefix);

    memcpy(start, prefix, pl);
    start[pl] = '"';
    lb_put(b, start, pl + 1);
    if (b->full)
        return;
    b->in_str = true;
    lb_put_escaped(b, s, n);
    lb_put(b, "\"", 1);
    if (!b->full)
        b->in_str = false;
}

static void lb_put_string(struct lb *b, const char *s, size_t n)
{
    lb_put_field_string(b, "", s, n);
}

static size_t lb_finish(struct lb *b, enum gm_log_format fmt)
{
    char *end = b->buf + b->len;

    if (fmt == GM_LOG_FORMAT_JSON && b->len == 0) /* not even the head fitted */
        end = stpcpy(end, "{\"truncated\":true");
    else if (b->full) {
        end = stpcpy(end, b->in_str ? ELLIPSIS "\"" : fmt == GM_LOG_FORMAT_TEXT ? ELLIPSIS : "");
        if (fmt == GM_LOG_FORMAT_JSON)
            end = stpcpy(end, ",\"truncated\":true");
    }
    if (fmt == GM_LOG_FORMAT_JSON)
        *end++ = '}';
    *end++ = '\n';
    *end = '\0';
    return (size_t)(end - b->buf);
}

/* ---- the key=value fragment ---- */

/* A capped formatting buffer; always NUL-terminated. */
struct fbuf {
    char *p;
    size_t len;
    size_t cap;
};

static void fbuf_put(struct fbuf *f, const char *s, size_t n)
{
    if (n > f->cap - 1 - f->len)
        n = f->cap - 1 - f->len;
    memcpy(f->p + f->len, s, n);
    f->len += n;
    f->p[f->len] = '\0';
}

enum len_mod { LEN_NONE = 0, LEN_HH, LEN_H, LEN_L, LEN_LL, LEN_J, LEN_Z, LEN_T, LEN_BIG_L };

static const char *parse_len(const char *f, enum len_mod *len)
{
    *len = LEN_NONE;
    if (f[0] == 'h')
        *len = f[1] == 'h' ? LEN_HH : LEN_H;
    else if (f[0] == 'l')
        *len = f[1] == 'l' ? LEN_LL : LEN_L;
    else if (f[0] == 'j')
        *len = LEN_J;
    else if (f[0] == 'z')
        *len = LEN_Z;
    else if (f[0] == 't')
        *len = LEN_T;
    else if (f[0] == 'L')
        *len = LEN_BIG_L;
    return f + (*len == LEN_NONE ? 0 : *len == LEN_HH || *len == LEN_LL ? 2 : 1);
}

static long long arg_signed(va_list *ap, enum len_mod len)
{
    switch (len) {
    case LEN_HH:
        return (signed char)va_arg(*ap, int);
    case LEN_H:
        return (short)va_arg(*ap, int);
    case LEN_L:
        return va_arg(*ap, long);
    case LEN_LL:
        return va_arg(*ap, long long);
    case LEN_J:
        return va_arg(*ap, intmax_t);
    case LEN_Z:
        return va_arg(*ap, ssize_t);
    case LEN_T:
        return va_arg(*ap, ptrdiff_t);
    default:
        return va_arg(*ap, int);
    }
}

static unsigned long long arg_unsigned(va_list *ap, enum len_mod len)
{
    switch (len) {
    case LEN_HH:
        return (unsigned char)va_arg(*ap, unsigned);
    case LEN_H:
        return (unsigned short)va_arg(*ap, unsigned);
    case LEN_L:
        return va_arg(*ap, unsigned long);
    case LEN_LL:
        return va_arg(*ap, unsigned long long);
    case LEN_J:
        return va_arg(*ap, uintmax_t);
    case LEN_Z:
        return va_arg(*ap, size_t);
    case LEN_T:
        return (unsigned long long)va_arg(*ap, ptrdiff_t);
    default:
        return va_arg(*ap, unsigned);
    }
}

/* Appends the decimal value of a '*' width or precision to spec. */
static void spec_star(char *spec, size_t *sl, int v, bool width)
{
    if (v < 0 && width)
        spec[(*sl)++] = '-';
    if (v < 0 && !width)
        return;
    *sl += (size_t)snprintf(spec + *sl, 16, "%s%d", width ? "" : ".", v < 0 ? -v : v);
}

/*
 * Formats the conversion at f (which points at '%') into out, consuming its arguments from ap.
 * Returns the format position after it; *numeric tells whether it printed a number.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static const char *fmt_conv(const char *f, va_list *ap, struct fbuf *out, bool *numeric)
{
    char spec[96], tmp[128];
    const char *str;
    size_t sl = 0, room = out->cap - 1 - out->len;
    enum len_mod len;
    char *dst = out->p + out->len;
    int n = 0;

    spec[sl++] = *f++;
    while (*f && strchr("-+ #0'", *f) && sl < 8)
        spec[sl++] = *f++;
    if (*f == '*') {
        spec_star(spec, &sl, va_arg(*ap, int), true);
        f++;
    } else {
        while (isdigit((unsigned char)*f) && sl < 24)
            spec[sl++] = *f++;
    }
    if (*f == '.') {
        f++;
        if (*f == '*') {
            spec_star(spec, &sl, va_arg(*ap, int), false);
            f++;
        } else {
            spec[sl++] = '.';
            while (isdigit((unsigned char)*f) && sl < 48)
                spec[sl++] = *f++;
        }
    }
    f = parse_len(f, &len);
    *numeric = *f && strchr("diufFeEgG", *f);
    /* the common plain conversions without printf: %s, %d, %i, %u (any integer length) */
    if (sl == 1 && (*f == 's' || *f == 'd' || *f == 'i' || *f == 'u') &&
        !(*f == 's' && len != LEN_NONE)) {
        const char *src = tmp;
        size_t k;

        if (*f == 's') {
            src = va_arg(*ap, const char *);
            if (src == NULL)
                src = "(null)";
            k = strlen(src);
        } else if (*f == 'u') {
            k = gm_fmt_u64(tmp, arg_unsigned(ap, len));
        } else {
            long long v = arg_signed(ap, len);
            unsigned long long mag = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

            tmp[0] = '-';
            k = gm_fmt_u64(tmp + (v < 0), mag) + (v < 0);
        }
        fbuf_put(out, src, k);
        return f + 1;
    }
    switch (*f) {
    case 'd':
    case 'i':
        memcpy(spec + sl, "lld", 4);
        n = snprintf(dst, room + 1, spec, arg_signed(ap, len));
        break;
    case 'u':
    case 'o':
    case 'x':
    case 'X':
        snprintf(spec + sl, 4, "ll%c", *f);
        n = snprintf(dst, room + 1, spec, arg_unsigned(ap, len));
        break;
    case 'f':
    case 'F':
    case 'e':
    case 'E':
    case 'g':
    case 'G':
    case 'a':
    case 'A':
        if (len == LEN_BIG_L) {
            snprintf(spec + sl, 3, "L%c", *f);
            n = snprintf(dst, room + 1, spec, va_arg(*ap, long double));
        } else {
            snprintf(spec + sl, 2, "%c", *f);
            n = snprintf(dst, room + 1, spec, va_arg(*ap, double));
        }
        break;
    case 'c':
        memcpy(spec + sl, "c", 2);
        n = snprintf(dst, room + 1, spec, va_arg(*ap, int));
        break;
    case 's':
        if (len == LEN_L) {
            (void)va_arg(*ap, void *);
            n = snprintf(dst, room + 1, "?");
            break;
        }
        memcpy(spec + sl, "s", 2);
        str = va_arg(*ap, const char *);
        n = snprintf(dst, room + 1, spec, str ? str : "(null)");
        break;
    case 'p':
        memcpy(spec + sl, "p", 2);
        n = snprintf(dst, room + 1, spec, va_arg(*ap, void *));
        break;
    case 'n':
        (void)va_arg(*ap, void *);
        break;
    default:
        /* unknown conversion: the compiler's format check should have caught it */
        n = snprintf(tmp, sizeof(tmp), "%%?");
        fbuf_put(out, tmp, (size_t)n);
        return *f ? f + 1 : f;
    }
    if (n > 0)
        out->len += (size_t)n < room ? (size_t)n : room;
    out->p[out->len] = '\0';
    return *f ? f + 1 : f;
}
#pragma GCC diagnostic pop

static bool is_json_number(const char *s, size_t n)
{
    size_t i = 0;

    if (i < n && s[i] == '-')
        i++;
    if (i >= n || !isdigit((unsigned char)s[i]))
        return false;
    if (s[i] == '0')
        i++;
    else
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
    if (i < n && s[i] == '.') {
        if (++i >= n || !isdigit((unsigned char)s[i]))
            return false;
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || !isdigit((unsigned char)s[i]))
            return false;
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
    }
    return i == n;
}

struct kv {
    struct fbuf key;
    struct fbuf val;
    bool has_eq;  /* the token had a '=' */
    bool numeric; /* the value is one numeric conversion with no literal text */
};

/*
 * Formats the next space-separated token of the fragment into kv. Returns the position after it,
 * or NULL at the end of the fragment.
 */
static const char *kv_next(const char *f, va_list *ap, struct kv *kv)
{
    struct fbuf *cur = &kv->key;
    int convs = 0;
    bool literal = false, numeric = false;

    while (*f == ' ')
        f++;
    if (*f == '\0')
        return NULL;
    kv->key.len = kv->val.len = 0;
    kv->key.p[0] = kv->val.p[0] = '\0';
    kv->has_eq = false;
    while (*f && *f != ' ') {
        if (*f == '=' && cur == &kv->key) {
            cur = &kv->val;
            kv->has_eq = true;
            f++;
        } else if (f[0] == '%' && f[1] != '%') {
            f = fmt_conv(f, ap, cur, &numeric);
            convs += cur == &kv->val;
        } else if (f[0] == '%') {
            fbuf_put(cur, f, 1); /* "%%" */
            literal |= cur == &kv->val;
            f += f[1] ? 2 : 1;
        } else {
            size_t run = 1;

            while (f[run] && f[run] != ' ' && f[run] != '%' && (f[run] != '=' || cur != &kv->key))
                run++;
            fbuf_put(cur, f, run);
            literal |= cur == &kv->val;
            f += run;
        }
    }
    kv->numeric =
        kv->has_eq && convs == 1 && !literal && numeric && is_json_number(kv->val.p, kv->val.len);
    return f;
}

/* The union of the byte classes of s. */
static unsigned byte_classes(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned k = 0;

    for (size_t i = 0; i < n; i++)
        k |= byte_class[p[i]];
    return k;
}

/* Appends s as-is when nothing in it needs an escape (the common case), else escaped. */
static void lb_put_text(struct lb *b, const char *s, size_t n, unsigned classes)
{
    if (classes & BYTE_ESCAPE)
        lb_put_escaped(b, s, n);
    else
        lb_put_part(b, s, n);
}

static void put_text_kv(struct lb *b, const struct kv *kv)
{
    lb_put(b, " ", 1);
    lb_put_text(b, kv->key.p, kv->key.len, byte_classes(kv->key.p, kv->key.len));
    if (!kv->has_eq)
        return;
    lb_put(b, "=", 1);
    unsigned k = byte_classes(kv->val.p, kv->val.len);
    if (kv->val.len == 0 || (k & BYTE_QUOTE))
        lb_put_string(b, kv->val.p, kv->val.len);
    else
        lb_put_text(b, kv->val.p, kv->val.len, k);
}

/* Writes one field whole, or rolls it back if its key or number does not fit. */
static void put_json_kv(struct lb *b, const struct kv *kv)
{
    size_t mark = b->len;

    lb_put(b, ",", 1);
    lb_put_string(b, kv->key.p, kv->key.len);
    lb_put(b, ":", 1);
    if (b->full)
        goto rollback;
    if (!kv->has_eq)
        lb_puts(b, "true");
    else if (kv->numeric)
        lb_put(b, kv->val.p, kv->val.len);
    else
        lb_put_string(b, kv->val.p, kv->val.len);
    /* a string value cut short stays (the ending closes it); anything else goes */
    if (!b->full || b->in_str)
        return;
rollback:
    b->len = mark;
    b->in_str = false;
}

static void put_head(struct lb *b, enum gm_log_format fmt, const struct timespec *ts,
                     enum gm_log_level level, const char *sub, const char *msg)
{
    /* The date and time up to the second change once a second: each thread keeps its last. */
    static _Thread_local time_t cached_sec = -1;
    static _Thread_local char cached[48];
    static _Thread_local int cached_len;
    char stamp[64];
    int n;

    if (ts->tv_sec != cached_sec) {
        struct tm tm;

        gmtime_r(&ts->tv_sec, &tm);
        cached_len =
            snprintf(cached, sizeof(cached), "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        if (cached_len < 0 || (size_t)cached_len >= sizeof(cached))
            cached_len = 0;
        cached_sec = ts->tv_sec;
    }
    long ms = (long)(ts->tv_nsec / 1000000);
    memcpy(stamp, cached, (size_t)cached_len);
    stamp[cached_len] = (char)('0' + ms / 100 % 10);
    stamp[cached_len + 1] = (char)('0' + ms / 10 % 10);
    stamp[cached_len + 2] = (char)('0' + ms % 10);
    stamp[cached_len + 3] = 'Z';
    stamp[cached_len + 4] = '\0';
    n = cached_len + 4;
    sub = sub ? sub : "-";
    msg = msg ? msg : "";
    if (fmt == GM_LOG_FORMAT_JSON) {
        /* Each piece goes in whole or not at all, so that a line cut short anywhere still
         * ends as one well-formed object (lb_finish). */
        char head[128];
        size_t hl = gm_str_join(head, sizeof(head),
                                (const char *[]){"{\"ts\":\"", stamp, "\",\"level\":\"",
                                                 gm_log_level_name(level), "\""},
                                5);

        lb_put(b, head, hl);
        lb_put_field_string(b, ",\"sub\":", sub, strlen(sub));
        lb_put_field_string(b, ",\"msg\":", msg, strlen(msg));
        return;
    } else {
        lb_puts(b, "ts=");
        lb_put(b, stamp, (size_t)n);
        lb_puts(b, " level=");
        lb_puts(b, gm_log_level_name(level));
        lb_puts(b, " sub=");
        lb_put_escaped(b, sub, strlen(sub));
        lb_puts(b, " msg=");
    }
    lb_put_string(b, msg, strlen(msg));
}

size_t gm_log_vrender(char *buf, size_t cap, enum gm_log_format fmt, const struct timespec *ts,
                      enum gm_log_level level, const char *sub, const char *msg, const char *kvfmt,
                      va_list ap)
{
    char keybuf[KEY_MAX], valbuf[GM_LOG_LINE_MAX];
    struct kv kv = {.key = {keybuf, 0, sizeof(keybuf)}, .val = {valbuf, 0, sizeof(valbuf)}};
    struct lb b = {.buf = buf, .cap = cap - LB_RESERVE};
    const char *f = kvfmt ? kvfmt : "";
    va_list aq;

    if (cap < 64)
        return 0;
    put_head(&b, fmt, ts, level, sub, msg);
    va_copy(aq, ap);
    while (!b.full && (f = kv_next(f, &aq, &kv)) != NULL) {
        if (fmt == GM_LOG_FORMAT_JSON)
            put_json_kv(&b, &kv);
        else
            put_text_kv(&b, &kv);
    }
    va_end(aq);
    return lb_finish(&b, fmt);
}

size_t gm_log_render(char *buf, size_t cap, enum gm_log_format fmt, const struct timespec *ts,
                     enum gm_log_level level, const char *sub, const char *msg, const char *kvfmt,
                     ...)
{
    va_list ap;
    size_t n;

    va_start(ap, kvfmt);
    n = gm_log_vrender(buf, cap, fmt, ts, level, sub, msg, kvfmt, ap);
    va_end(ap);
    return n;
}

static atomic_ullong lines_unwritten, lines_suppressed;

unsigned long long gm_log_lines_unwritten(void)
{
    return atomic_load_explicit(&lines_unwritten, memory_order_relaxed);
}

unsigned long long gm_log_lines_suppressed(void)
{
    return atomic_load_explicit(&lines_suppressed, memory_order_relaxed);
}

/* One write(2) per line; a partial write is finished, EINTR retried, anything else drops it
 * (and counts it). */
static void write_line(int fd, const char *p, size_t n)
{
    int saved = errno;

    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            atomic_fetch_add_explicit(&lines_unwritten, 1, memory_order_relaxed);
            break;
        }
        p += w;
        n -= (size_t)w;
    }
    errno = saved;
}

void gm_log_emit(enum gm_log_level level, const char *sub, const char *msg, const char *kvfmt, ...)
{
    char line[GM_LOG_LINE_MAX];
    struct timespec ts;
    va_list ap;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    va_start(ap, kvfmt);
    n = gm_log_vrender(line, sizeof(line), gm_log_get_format(), &ts, level, sub, msg, kvfmt, ap);
    va_end(ap);
    write_line(atomic_load_explicit(&log_fd, memory_order_relaxed), line, n);
}

/* ---- rate-limited call sites ---- */

bool gm_log_limit_take_at(struct gm_log_limit *l, uint64_t now_ms, unsigned *dropped)
{
    uint_fast64_t w = now_ms / GM_LOG_LIMIT_WINDOW_MS + 1; /* 0 is "never" */
    uint_fast64_t cur = atomic_load_explicit(&l->window, memory_order_relaxed);

    /* the first thread to see a new window resets its count (a race lets a line or two more) */
    if (cur != w && atomic_compare_exchange_strong(&l->window, &cur, w))
        atomic_store_explicit(&l->count, 0, memory_order_relaxed);
    if (atomic_fetch_add_explicit(&l->count, 1, memory_order_relaxed) >= GM_LOG_LIMIT_LINES) {
        atomic_fetch_add_explicit(&l->dropped, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&lines_suppressed, 1, memory_order_relaxed);
        return false;
    }
    *dropped = atomic_exchange_explicit(&l->dropped, 0, memory_order_relaxed);
    return true;
}

bool gm_log_limit_take(struct gm_log_limit *l, unsigned *dropped)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return gm_log_limit_take_at(l, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000,
                                dropped);
}
