/* Fuzz target: the log line builder on arbitrary values, both formats, any buffer size. Every
 * line must end in exactly one newline, hold no raw control byte, be valid UTF-8, fit in its
 * buffer, and in JSON be one well-formed object. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gammamesh/log.h"

#define FUZZ_MAX_INPUT 12000

static bool utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;
        if ((c >= 0x80 && c < 0xc2) || c > 0xf4 || i + len > n)
            return false;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        i += len;
    }
    return true;
}

/* A JSON string at *p; advances past it. */
static bool json_string(const char **p)
{
    const char *s = *p;

    if (*s++ != '"')
        return false;
    while (*s != '"') {
        if ((unsigned char)*s < 0x20)
            return false;
        if (*s == '\\') {
            s++;
            if (*s == 'u') {
                for (int k = 1; k <= 4; k++)
                    if (!strchr("0123456789abcdefABCDEF", s[k]) || s[k] == 0)
                        return false;
                s += 5;
                continue;
            }
            if (!strchr("\"\\/bfnrt", *s) || *s == 0)
                return false;
        }
        s++;
    }
    *p = s + 1;
    return true;
}

static bool json_number(const char **p)
{
    char *end;

    (void)strtod(*p, &end);
    if (end == *p)
        return false;
    *p = end;
    return true;
}

/* {"k":v,...}\n with v a string, a number or true. */
static bool json_line(const char *s)
{
    if (*s++ != '{')
        return false;
    for (bool first = true; *s != '}'; first = false) {
        if (!first && *s++ != ',')
            return false;
        if (!json_string(&s) || *s++ != ':')
            return false;
        if (*s == '"') {
            if (!json_string(&s))
                return false;
        } else if (strncmp(s, "true", 4) == 0) {
            s += 4;
        } else if (!json_number(&s)) {
            return false;
        }
    }
    return strcmp(s, "}\n") == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char line[GM_LOG_LINE_MAX];
    char a[FUZZ_MAX_INPUT + 1], b[FUZZ_MAX_INPUT + 1];
    struct timespec ts = {1700000000, 999999999};

    if (size < 4 || size > FUZZ_MAX_INPUT)
        return 0;
    /* byte 0: format; byte 1-2: buffer size; the rest: two values split at the first NUL */
    enum gm_log_format fmt = data[0] & 1 ? GM_LOG_FORMAT_JSON : GM_LOG_FORMAT_TEXT;
    size_t cap = 64 + ((size_t)data[1] << 8 | data[2]) % (sizeof(line) - 64 + 1);
    const uint8_t *rest = data + 3;
    size_t n = size - 3, an = strnlen((const char *)rest, n);
    memcpy(a, rest, an);
    a[an] = '\0';
    size_t bn = an < n ? n - an - 1 : 0;
    memcpy(b, rest + (an < n ? an + 1 : n), bn);
    b[bn] = '\0';
    ts.tv_sec += (time_t)(data[0] >> 1) * 86399;

    size_t len = gm_log_render(line, cap, fmt, &ts, GM_LOG_LEVEL_WARN, a, b,
                               " k=%s n=%d u=%llu pre%sfix bare %s=%s z=%zu", a, (int)an,
                               (unsigned long long)bn << 40, b, b, a, n);
    if (len == 0 || len >= cap || line[len] != '\0' || line[len - 1] != '\n' ||
        memchr(line, '\n', len - 1) != NULL)
        abort();
    for (size_t i = 0; i + 1 < len; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            abort();
    if (!utf8_valid((const unsigned char *)line, len))
        abort();
    if (fmt == GM_LOG_FORMAT_JSON && !json_line(line))
        abort();
    return 0;
}
