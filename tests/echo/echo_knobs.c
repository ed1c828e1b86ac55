/* Query knobs of the echo server: ?delay=, ?codes=, ?headers=, ?fail_first=&key=. Pure
 * parsing plus process-wide counters; no I/O. */
#include "echo.h"
#include "echo_canon.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>

#define NS_PER_MS 1000000ULL
#define MAX_NS    ((uint64_t)ECHO_MAX_DELAY_MS * NS_PER_MS)

void echo_knobs_init(struct echo_knobs *k)
{
    memset(k, 0, sizeof(*k));
    k->fail_first = -1;
}

void echo_knobs_done(struct echo_knobs *k)
{
    free(k->codes);
    free(k->key);
    for (size_t i = 0; i < k->nhdrs; i++) {
        free(k->hdr_name[i]);
        free(k->hdr_value[i]);
    }
    echo_knobs_init(k);
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decode a query component like Go's url.QueryUnescape; NULL on a bad escape or a NUL byte. */
static char *unescape(const char *p, size_t n)
{
    char *out = gm_xmalloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%') {
            if (i + 2 >= n)
                goto fail;
            int hi = hexval(p[i + 1]), lo = hexval(p[i + 2]);
            if (hi < 0 || lo < 0)
                goto fail;
            ch = (char)(hi << 4 | lo);
            i += 2;
        }
        if (ch == '\0')
            goto fail;
        out[o++] = ch;
    }
    out[o] = '\0';
    return out;
fail:
    free(out);
    return NULL;
}

static int parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;

    if (*s == '\0')
        return -EINVAL;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return -EINVAL;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > max)
            return -EINVAL;
    }
    *out = v;
    return 0;
}

static int parse_codes(struct echo_knobs *k, char *err, size_t errlen)
{
    char *save = NULL;
    char *dup = gm_xstrdup(k->codes);
    int rc = 0;

    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        unsigned long code, weight = 1;
        char *colon = strchr(tok, ':');
        if (colon)
            *colon = '\0';
        if (k->ncodes == ECHO_MAX_CODES) {
            rc = fail(err, errlen, "codes: more than %d entries", ECHO_MAX_CODES);
            goto out;
        }
        if (parse_ulong(tok, 999, &code) < 0 || code < 200 || code > 599) {
            rc = fail(err, errlen, "codes: bad status %.16s", tok);
            goto out;
        }
        if (colon && (parse_ulong(colon + 1, 1000000, &weight) < 0 || weight == 0)) {
            rc = fail(err, errlen, "codes: bad weight %.16s", colon + 1);
            goto out;
        }
        k->code_v[k->ncodes].code = (int)code;
        k->code_v[k->ncodes].weight = (unsigned)weight;
        k->ncodes++;
    }
    if (k->ncodes == 0)
        rc = fail(err, errlen, "codes: empty");
out:
    free(dup);
    return rc;
}

static bool valid_value(const char *v)
{
    for (; *v; v++) {
        unsigned char ch = (unsigned char)*v;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
    }
    return true;
}

static int parse_headers(struct echo_knobs *k, char *list, char *err, size_t errlen)
{
    char *save = NULL;

    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        if (!colon)
            return fail(err, errlen, "headers: missing ':' in %.32s", tok);
        *colon = '\0';
        if (*tok == '\0')
            return fail(err, errlen, "headers: empty name");
        for (const char *p = tok; *p; p++) {
            if (!echo_is_tchar((unsigned char)*p))
                return fail(err, errlen, "headers: bad name %.32s", tok);
        }
        if (!valid_value(colon + 1))
            return fail(err, errlen, "headers: bad value for %.32s", tok);
        if (k->nhdrs == ECHO_MAX_RESP_HEADERS)
            return fail(err, errlen, "headers: more than %d entries", ECHO_MAX_RESP_HEADERS);
        k->hdr_name[k->nhdrs] = gm_xstrdup(tok);
        k->hdr_value[k->nhdrs] = gm_xstrdup(colon + 1);
        k->nhdrs++;
    }
    return 0;
}

/* Apply one decoded parameter; the first occurrence of a name wins, as with Go's FormValue. */
static int apply(struct echo_knobs *k, const char *name, char *value, unsigned *seen, char *err,
                 size_t errlen)
{
    static const char *const names[] = {"delay", "codes", "headers", "fail_first", "key"};
    size_t i;

    for (i = 0; i < GM_ARRAY_LEN(names); i++) {
        if (strcmp(name, names[i]) == 0)
            break;
    }
    if (i == GM_ARRAY_LEN(names) || (*seen & (1u << i)))
        return 0;
    *seen |= 1u << i;
    unsigned long n;
    switch (i) {
    case 0:
        if (echo_knobs_duration(value, &k->delay_ms) < 0)
            return fail(err, errlen, "delay: bad duration %.32s", value);
        return 0;
    case 1:
        k->codes = gm_xstrdup(value);
        return parse_codes(k, err, errlen);
    case 2:
        return parse_headers(k, value, err, errlen);
    case 3:
        if (parse_ulong(value, 1000000000UL, &n) < 0)
            return fail(err, errlen, "fail_first: bad count %.32s", value);
        k->fail_first = (long)n;
        return 0;
    default:
        k->key = gm_xstrdup(value);
        return 0;
    }
}

int echo_knobs_parse(struct echo_knobs *k, const char *query, size_t len, char *err, size_t errlen)
{
    unsigned seen = 0;
    size_t pos = 0;

    while (pos < len) {
        const char *amp = memchr(query + pos, '&', len - pos);
        size_t end = amp ? (size_t)(amp - query) : len;
        const char *eq = memchr(query + pos, '=', end - pos);
        size_t name_end = eq ? (size_t)(eq - query) : end;
        char *name = unescape(query + pos, name_end - pos);
        char *value = eq ? unescape(eq + 1, end - name_end - 1) : gm_xstrdup("");
        int rc = 0;
        if (name && value)
            rc = apply(k, name, value, &seen, err, errlen);
        free(name);
        free(value);
        if (rc < 0)
            return rc;
        pos = end + 1;
    }
    if (!k->key)
        k->key = gm_xstrdup("");
    return 0;
}

static int unit_ns(const char **s, uint64_t *unit)
{
    static const struct {
        const char *name;
        uint64_t ns;
    } units[] = {
        {"ns", 1},
        {"us", 1000},
        {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
        {"\xce\xbcs", 1000}, /* U+03BC Greek mu */
        {"ms", NS_PER_MS},
        {"s", 1000 * NS_PER_MS},
        {"m", 60 * 1000 * NS_PER_MS},
        {"h", 3600 * 1000 * NS_PER_MS},
    };

    for (size_t i = 0; i < GM_ARRAY_LEN(units); i++) {
        size_t n = strlen(units[i].name);
        /* "m" must not swallow the "m" of "ms" */
        if (strncmp(*s, units[i].name, n) == 0 && !(n == 1 && **s == 'm' && (*s)[1] == 's')) {
            *s += n;
            *unit = units[i].ns;
            return 0;
        }
    }
    return -EINVAL;
}

/* One "<digits>[.<digits>]<unit>" element; adds to *total, capped just above MAX_NS. */
static int duration_elem(const char **s, uint64_t *total)
{
    uint64_t whole = 0, frac = 0, scale = 1, unit;
    bool digits = false;

    for (; isdigit((unsigned char)**s); (*s)++, digits = true) {
        if (whole < MAX_NS)
            whole = whole * 10 + (uint64_t)(**s - '0');
    }
    if (**s == '.') {
        for ((*s)++; isdigit((unsigned char)**s); (*s)++, digits = true) {
            if (scale < 1000000000ULL) {
                frac = frac * 10 + (uint64_t)(**s - '0');
                scale *= 10;
            }
        }
    }
    if (!digits || unit_ns(s, &unit) < 0)
        return -EINVAL;
    if (whole > MAX_NS / unit) {
        *total = MAX_NS + 1;
        return 0;
    }
    *total += whole * unit + (uint64_t)((long double)frac * (long double)unit / scale);
    if (*total > MAX_NS)
        *total = MAX_NS + 1;
    return 0;
}

int echo_knobs_duration(const char *s, uint64_t *ms)
{
    uint64_t ns = 0;

    if (*s == '+')
        s++;
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return 0;
    }
    if (*s == '\0')
        return -EINVAL;
    while (*s) {
        if (duration_elem(&s, &ns) < 0)
            return -EINVAL;
    }
    if (ns > MAX_NS)
        return -EINVAL;
    *ms = (ns + NS_PER_MS - 1) / NS_PER_MS;
    return 0;
}

uint64_t echo_counters_next(struct echo_counters *t, const char *key)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->v[i].key, key) == 0)
            return t->v[i].n++;
    }
    if (t->n == ECHO_MAX_COUNTERS)
        echo_counters_done(t); /* forget everything rather than grow without bound */
    GM_VEC_PUSH(t->v, t->n, t->cap);
    t->v[t->n - 1].key = gm_xstrdup(key);
    t->v[t->n - 1].n = 1;
    return 0;
}

void echo_counters_done(struct echo_counters *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].key);
    free(t->v);
    memset(t, 0, sizeof(*t));
}

int echo_knobs_status(const struct echo_knobs *k, struct echo_counters *codes,
                      struct echo_counters *fails)
{
    if (k->fail_first >= 0 && echo_counters_next(fails, k->key) < (uint64_t)k->fail_first)
        return 503;
    if (k->ncodes == 0)
        return 200;
    uint64_t total = 0;
    for (size_t i = 0; i < k->ncodes; i++)
        total += k->code_v[i].weight;
    uint64_t slot = echo_counters_next(codes, k->codes) % total;
    for (size_t i = 0; i < k->ncodes; i++) {
        if (slot < k->code_v[i].weight)
            return k->code_v[i].code;
        slot -= k->code_v[i].weight;
    }
    return 200;
}
