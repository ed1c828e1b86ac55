/* The strict HTTP/1.1 request head validator (h1_check.h). */
#include "h1_check.h"

#include <string.h>
#include <strings.h>

#include "gammamesh/util.h"

#define CL_MAX ((int64_t)1 << 53) /* a Content-Length beyond this is refused */

bool wp_h1_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field-value bytes: VCHAR, obs-text, SP, HTAB. */
static bool vchar(unsigned char c)
{
    return c == ' ' || c == '\t' || (c > 0x20 && c != 0x7f);
}

void wp_h1_head_init(struct wp_h1_head *h, const struct wp_h1_limits *lim)
{
    memset(h, 0, sizeof(*h));
    h->lim = *lim;
    h->fields = gm_xcalloc(lim->max_headers ? lim->max_headers : 1, sizeof(*h->fields));
    wp_h1_head_reset(h);
}

void wp_h1_head_done(struct wp_h1_head *h)
{
    free(h->fields);
    h->fields = NULL;
}

void wp_h1_head_reset(struct wp_h1_head *h)
{
    struct wp_h1_field *fields = h->fields;
    struct wp_h1_limits lim = h->lim;

    memset(h, 0, sizeof(*h));
    h->fields = fields;
    h->lim = lim;
    h->content_length = -1;
}

static enum wp_h1_verdict bad(struct wp_h1_head *h, int status, const char *why)
{
    h->status = status;
    h->why = why;
    return WP_H1_BAD;
}

static struct wp_h1_span span(size_t off, size_t len)
{
    return (struct wp_h1_span){(uint32_t)off, (uint32_t)len};
}

/* origin-form, absolute-form or "*": visible ASCII, no '#'. */
static bool target_ok(const char *p, size_t n)
{
    if (n == 0 || (p[0] != '/' && p[0] != '*' && !(n > 7 && strncasecmp(p, "http", 4) == 0)))
        return false;
    if (p[0] == '*' && n != 1)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f || p[i] == '#')
            return false;
    return true;
}

/* "METHOD SP target SP HTTP/1.x" (line without its CRLF). */
static enum wp_h1_verdict request_line(struct wp_h1_head *h, const char *buf, size_t off, size_t n)
{
    const char *p = buf + off, *end = p + n, *sp1, *sp2;
    size_t i = 0;

    while (i < n && wp_h1_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == n || p[i] != ' ')
        return bad(h, 400, "bad method");
    sp1 = p + i;
    sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
    if (sp2 == NULL || !target_ok(sp1 + 1, (size_t)(sp2 - sp1 - 1)))
        return bad(h, 400, "bad request target");
    if (end - sp2 - 1 != 8 || memcmp(sp2 + 1, "HTTP/", 5) != 0 || sp2[7] != '.' || sp2[6] < '0' ||
        sp2[6] > '9' || sp2[8] < '0' || sp2[8] > '9')
        return bad(h, 400, "bad HTTP version");
    if (sp2[6] != '1' || sp2[8] > '1')
        return bad(h, 505, "unsupported HTTP version");
    h->minor = sp2[8] - '0';
    h->method = span(off, (size_t)(sp1 - p));
    h->target = span((size_t)(sp1 + 1 - buf), (size_t)(sp2 - sp1 - 1));
    return WP_H1_MORE;
}

/* Content-Length: digits, exactly once. A repeated one is refused even when identical (RFC 9110
 * §8.6 allows that; llhttp refuses it too, so both parsers agree). */
static enum wp_h1_verdict content_length(struct wp_h1_head *h, const char *v, size_t n)
{
    int64_t cl = 0;

    if (h->content_length >= 0)
        return bad(h, 400, "repeated Content-Length");
    if (n == 0)
        return bad(h, 400, "Content-Length is not a number");
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return bad(h, 400, "Content-Length is not a number");
        cl = cl * 10 + (v[i] - '0');
        if (cl > CL_MAX)
            return bad(h, 400, "Content-Length too large");
    }
    h->content_length = cl;
    return WP_H1_MORE;
}

/* Transfer-Encoding: only "chunked", once, last. */
static enum wp_h1_verdict transfer_encoding(struct wp_h1_head *h, const char *v, size_t n)
{
    size_t i = 0;

    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t' && v[i] != ';')
            i++;
        if (i == start && i == n)
            break; /* trailing separators */
        if (i == start)
            return bad(h, 400, "bad Transfer-Encoding"); /* a parameter without a coding */
        if (h->chunked)
            return bad(h, 400, "chunked is not the last transfer coding");
        if (i - start != 7 || strncasecmp(v + start, "chunked", 7) != 0)
            return bad(h, 501, "unsupported transfer coding");
        h->chunked = true;
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (i < n && v[i] != ',')
            return bad(h, 400, "bad Transfer-Encoding");
    }
    if (!h->chunked)
        return bad(h, 400, "empty Transfer-Encoding");
    return WP_H1_MORE;
}

static enum wp_h1_verdict framing_field(struct wp_h1_head *h, const char *buf,
                                        const struct wp_h1_field *f)
{
    const char *name = buf + f->name.off, *v = buf + f->value.off;

    if (f->name.len == 14 && strncasecmp(name, "content-length", 14) == 0)
        return content_length(h, v, f->value.len);
    if (f->name.len == 17 && strncasecmp(name, "transfer-encoding", 17) == 0) {
        if (h->minor == 0)
            return bad(h, 400, "Transfer-Encoding in HTTP/1.0");
        return transfer_encoding(h, v, f->value.len);
    }
    if (f->name.len == 4 && strncasecmp(name, "host", 4) == 0)
        h->hosts++;
    return WP_H1_MORE;
}

/* "name: value" (line without its CRLF). */
static enum wp_h1_verdict field_line(struct wp_h1_head *h, const char *buf, size_t off, size_t n)
{
    const char *p = buf + off;
    size_t i = 0, vs, ve;

    if (p[0] == ' ' || p[0] == '\t')
        return bad(h, 400, "whitespace before a field name or obs-fold");
    while (i < n && wp_h1_tchar((unsigned char)p[i]))
        i++;
    if (i < n && (p[i] == ' ' || p[i] == '\t'))
        return bad(h, 400, "whitespace before the colon");
    if (i == 0 || i == n || p[i] != ':')
        return bad(h, 400, "bad field name");
    vs = i + 1;
    for (size_t k = vs; k < n; k++)
        if (!vchar((unsigned char)p[k]))
            return bad(h, 400, "control character in a field value");
    while (vs < n && (p[vs] == ' ' || p[vs] == '\t'))
        vs++;
    ve = n;
    while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
        ve--;
    if (h->n_fields == h->lim.max_headers)
        return bad(h, 431, "too many header fields");
    struct wp_h1_field *f = &h->fields[h->n_fields++];
    f->name = span(off, i);
    f->value = span(off + vs, ve - vs);
    return framing_field(h, buf, f);
}

/* The empty line: the head is complete. */
static enum wp_h1_verdict finish(struct wp_h1_head *h, size_t end)
{
    if (h->content_length >= 0 && h->chunked)
        return bad(h, 400, "both Content-Length and Transfer-Encoding");
    if (h->hosts > 1 || (h->minor == 1 && h->hosts == 0))
        return bad(h, 400, h->hosts ? "more than one Host" : "no Host");
    h->length = end;
    return WP_H1_DONE;
}

/* One complete line buf[off..off+n) followed by CRLF. */
static enum wp_h1_verdict line(struct wp_h1_head *h, const char *buf, size_t off, size_t n)
{
    if (memchr(buf + off, '\r', n) || memchr(buf + off, '\0', n))
        return bad(h, 400, "CR or NUL inside a line");
    if (!h->have_line) {
        h->have_line = true;
        return request_line(h, buf, off, n);
    }
    return field_line(h, buf, off, n);
}

enum wp_h1_verdict wp_h1_head_scan(struct wp_h1_head *h, const char *buf, size_t len)
{
    enum wp_h1_verdict v;

    if (h->status)
        return WP_H1_BAD;
    while (h->pos < len) {
        const char *lf = memchr(buf + h->scan, '\n', len - h->scan);
        if (lf == NULL) {
            h->scan = len;
            if (len > h->lim.max_head_bytes)
                return bad(h, 431, "request head too large");
            return WP_H1_MORE;
        }
        size_t eol = (size_t)(lf - buf);
        if (eol + 1 > h->lim.max_head_bytes)
            return bad(h, 431, "request head too large");
        if (eol == h->pos || buf[eol - 1] != '\r')
            return bad(h, 400, "line not ending in CRLF");
        size_t n = eol - 1 - h->pos;
        if (n == 0 && h->have_line)
            return finish(h, eol + 1);
        if (n == 0)
            return bad(h, 400, "empty request line");
        if ((v = line(h, buf, h->pos, n)) != WP_H1_MORE)
            return v;
        h->pos = h->scan = eol + 1;
    }
    return WP_H1_MORE;
}
