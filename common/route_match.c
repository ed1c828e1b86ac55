/* Route matching: PCRE2 helpers, Gateway API precedence between compiled matches, and the test
 * of one request against one match. Pure functions over borrowed data; the only state is a
 * per-thread PCRE2 match context and match data, created on first use.
 *
 * Semantics chosen where the spec leaves room (httproute.md §1.4, §1.5):
 * - Regular expressions are PCRE2 (8-bit, bytes, no UTF), anchored at both ends, case-sensitive,
 *   with a match limit of 100000 and a depth limit of 1000; hitting a limit is "no match".
 * - Precedence: Exact paths first, then PathPrefix by length of the configured value (trailing
 *   '/' removed), then RegularExpression paths (after every Exact and PathPrefix match, so a
 *   catch-all `/` prefix shadows them; among themselves they rank by the later criteria only);
 *   then a method condition; then more header conditions; then more query conditions; then the
 *   older route; then "namespace/name" in byte order; then rule index; then match index.
 * - A header repeated in the request is matched against its values joined with "," ("; " for
 *   Cookie, which HTTP/2 splits into crumbs).
 * - Query parameters are split on '&'; a parameter's name and value are each compared both raw
 *   and percent-decoded ('+' decodes to a space), and either form matching is enough. Only the
 *   first parameter with the name counts; a parameter without '=' has the empty value.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <strings.h>

#include "gammamesh/route.h"
#include "gammamesh/util.h"

#define REGEX_MATCH_LIMIT 100000
#define REGEX_DEPTH_LIMIT 1000
/* Joined header values and decoded query parts up to this size use the stack. */
#define STACK_BUF 1024

/* ---- regular expressions ---- */

struct regex_tls {
    pcre2_match_context *mctx;
    pcre2_match_data *md;
};

static _Thread_local struct regex_tls tls;

static struct regex_tls *regex_tls_get(void)
{
    if (tls.mctx == NULL) {
        tls.mctx = pcre2_match_context_create(NULL);
        GM_ASSERT(tls.mctx != NULL);
        pcre2_set_match_limit(tls.mctx, REGEX_MATCH_LIMIT);
        pcre2_set_depth_limit(tls.mctx, REGEX_DEPTH_LIMIT);
        /* One pair is enough: we only ask whether it matched (rc 0 = matched, ovector full). */
        tls.md = pcre2_match_data_create(1, NULL);
        GM_ASSERT(tls.md != NULL);
    }
    return &tls;
}

gm_regex *gm_regex_compile(const char *pattern, char *err, size_t errlen)
{
    /* Anchoring both ends at compile time (rather than per match) keeps the JIT usable: PCRE2
     * disables JIT for matches that pass PCRE2_ANCHORED or PCRE2_ENDANCHORED. */
    uint32_t opts = PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_NEVER_UTF | PCRE2_NEVER_UCP;
    int code = 0;
    PCRE2_SIZE off = 0;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &code, &off, NULL);

    if (re == NULL) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", code);
        if (err && errlen)
            snprintf(err, errlen, "%s at offset %zu", (const char *)msg, (size_t)off);
        return NULL;
    }
    /* JIT is an optimisation only: without it (no JIT support, no executable memory) the
     * interpreter runs the same pattern. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

void gm_regex_free(gm_regex *re)
{
    pcre2_code_free(re);
}

bool gm_regex_full_match(const gm_regex *re, const char *s, size_t len)
{
    struct regex_tls *t;

    if (re == NULL)
        return false;
    t = regex_tls_get();
    /* Any error (no match, match or depth limit, JIT stack limit) is "no match". */
    return pcre2_match(re, (PCRE2_SPTR)(s ? s : ""), len, 0, 0, t->md, t->mctx) >= 0;
}

/* ---- precedence ---- */

static int path_rank(enum gm_path_match t)
{
    switch (t) {
    case GM_PATH_EXACT:
        return 0;
    case GM_PATH_PREFIX:
        return 1;
    default:
        return 2;
    }
}

/* Negative when x should come first: the larger count wins. */
static int more_wins(size_t x, size_t y)
{
    return x > y ? -1 : x < y ? 1 : 0;
}

/* Compare "ns/name" of two routes as strings without building them. */
static int route_key_cmp(const struct gm_meta *a, const struct gm_meta *b)
{
    const char *pa[3] = {a->namespace ? a->namespace : "", "/", a->name ? a->name : ""};
    const char *pb[3] = {b->namespace ? b->namespace : "", "/", b->name ? b->name : ""};
    size_t ia = 0, ib = 0;
    const char *ca = pa[0], *cb = pb[0];

    for (;;) {
        while (*ca == '\0' && ia < 2)
            ca = pa[++ia];
        while (*cb == '\0' && ib < 2)
            cb = pb[++ib];
        if (*ca == '\0' || *cb == '\0' || *ca != *cb)
            return (int)(unsigned char)*ca - (int)(unsigned char)*cb;
        ca++;
        cb++;
    }
}

static int route_cmp(const struct gm_crule *ra, const struct gm_crule *rb)
{
    const struct gm_meta *a = &ra->route->meta, *b = &rb->route->meta;
    int c;

    if (ra->route == rb->route)
        return 0;
    if (a->created != b->created)
        return a->created < b->created ? -1 : 1;
    c = route_key_cmp(a, b);
    return c < 0 ? -1 : c > 0 ? 1 : 0;
}

/* Path specificity: Exact, then longer PathPrefix, then RegularExpression. */
static int path_cmp(const struct gm_cmatch *a, const struct gm_cmatch *b)
{
    int ra = path_rank(a->path_type), rb = path_rank(b->path_type);

    if (ra != rb)
        return ra < rb ? -1 : 1;
    if (a->path_type == GM_PATH_REGEX)
        return 0;
    return more_wins(a->path_len, b->path_len);
}

int gm_cmatch_cmp(const struct gm_cmatch *a, const struct gm_cmatch *b)
{
    int c;

    if ((c = path_cmp(a, b)) != 0)
        return c;
    if ((c = more_wins(a->method != NULL, b->method != NULL)) != 0)
        return c;
    if ((c = more_wins(a->n_headers, b->n_headers)) != 0)
        return c;
    if ((c = more_wins(a->n_queries, b->n_queries)) != 0)
        return c;
    if ((c = route_cmp(a->rule, b->rule)) != 0)
        return c;
    if (a->rule->index != b->rule->index)
        return a->rule->index < b->rule->index ? -1 : 1;
    if (a->match_index != b->match_index)
        return a->match_index < b->match_index ? -1 : 1;
    return 0;
}

/* ---- paths ---- */

static bool path_matches(const struct gm_cmatch *m, const struct gm_req_view *r)
{
    const char *p = r->path ? r->path : "";
    size_t n = r->path ? r->path_len : 0;

    switch (m->path_type) {
    case GM_PATH_EXACT:
        return n == m->path_len && memcmp(p, m->path, n) == 0;
    case GM_PATH_PREFIX:
        if (m->path_len == 1 && m->path[0] == '/')
            return true;
        return n >= m->path_len && memcmp(p, m->path, m->path_len) == 0 &&
               (n == m->path_len || p[m->path_len] == '/');
    case GM_PATH_REGEX:
        return gm_regex_full_match(m->path_re, p, n);
    default:
        return false;
    }
}

/* ---- headers ---- */

static bool hdr_name_is(const struct gm_hdr *h, const char *name, size_t len)
{
    return h->name_len == len && strncasecmp(h->name, name, len) == 0;
}

/* Does the request's value list for name, joined with sep, equal want? No allocation. */
static bool joined_equals(const struct gm_req_view *r, const char *name, size_t name_len,
                          const char *sep, const char *want)
{
    size_t seplen = strlen(sep), off = 0, wlen = strlen(want);
    bool first = true;

    for (size_t i = 0; i < r->n_headers; i++) {
        const struct gm_hdr *h = &r->headers[i];
        if (!hdr_name_is(h, name, name_len))
            continue;
        if (!first) {
            if (wlen - off < seplen || memcmp(want + off, sep, seplen) != 0)
                return false;
            off += seplen;
        }
        if (wlen - off < h->value_len || memcmp(want + off, h->value, h->value_len) != 0)
            return false;
        off += h->value_len;
        first = false;
    }
    return !first && off == wlen;
}

/* Join the request's values for name with sep into b (caller frees b->data). */
static void join_values(const struct gm_req_view *r, const char *name, size_t name_len,
                        const char *sep, struct gm_buf *b)
{
    bool first = true;

    for (size_t i = 0; i < r->n_headers; i++) {
        const struct gm_hdr *h = &r->headers[i];
        if (!hdr_name_is(h, name, name_len))
            continue;
        if (!first)
            gm_buf_append(b, sep, strlen(sep));
        gm_buf_append(b, h->value, h->value_len);
        first = false;
    }
}

static bool header_present(const struct gm_req_view *r, const char *name, size_t name_len)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (hdr_name_is(&r->headers[i], name, name_len))
            return true;
    return false;
}

static bool header_matches(const struct gm_cvalue *v, const struct gm_req_view *r)
{
    size_t name_len = strlen(v->name);
    const char *sep = strcasecmp(v->name, "cookie") == 0 ? "; " : ",";
    struct gm_buf b;
    bool ok;

    if (!header_present(r, v->name, name_len))
        return false;
    if (v->type == GM_VALUE_EXACT)
        return joined_equals(r, v->name, name_len, sep, v->value);
    if (v->type != GM_VALUE_REGEX)
        return false;
    gm_buf_init(&b, 0);
    join_values(r, v->name, name_len, sep, &b);
    ok = gm_regex_full_match(v->re, b.data ? b.data : "", b.len);
    gm_buf_done(&b);
    return ok;
}

/* ---- query parameters ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) into out (at least n bytes); '+' becomes ' ', a malformed escape is
 * kept literally. Returns the decoded length. */
static size_t pct_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
            (lo = hexval(s[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    return o;
}

/* One "name=value" piece of a query string (borrowed). */
struct qparam {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* Split the next '&'-separated piece off q[*pos..n); false at the end. */
static bool next_param(const char *q, size_t n, size_t *pos, struct qparam *p)
{
    while (*pos < n && q[*pos] == '&')
        (*pos)++;
    if (*pos >= n)
        return false;
    const char *start = q + *pos, *amp = memchr(start, '&', n - *pos);
    size_t len = amp ? (size_t)(amp - start) : n - *pos;
    const char *eq = memchr(start, '=', len);

    *pos += len;
    p->name = start;
    p->name_len = eq ? (size_t)(eq - start) : len;
    p->value = eq ? eq + 1 : start + len;
    p->value_len = eq ? len - p->name_len - 1 : 0;
    return true;
}

/* Compare a raw (still encoded) piece with want, raw or decoded. */
static bool piece_equals(const char *s, size_t n, const char *want)
{
    size_t wlen = strlen(want);
    char stack[STACK_BUF];

    if (n == wlen && memcmp(s, want, n) == 0)
        return true;
    if (memchr(s, '%', n) == NULL && memchr(s, '+', n) == NULL)
        return false;
    if (n > sizeof(stack)) {
        char *heap = gm_xmalloc(n);
        size_t d = pct_decode(s, n, heap);
        bool ok = d == wlen && memcmp(heap, want, d) == 0;
        free(heap);
        return ok;
    }
    size_t d = pct_decode(s, n, stack);
    return d == wlen && memcmp(stack, want, d) == 0;
}

static bool piece_regex(const gm_regex *re, const char *s, size_t n)
{
    char stack[STACK_BUF], *buf = stack;
    bool ok;

    if (gm_regex_full_match(re, s, n))
        return true;
    if (memchr(s, '%', n) == NULL && memchr(s, '+', n) == NULL)
        return false;
    if (n > sizeof(stack))
        buf = gm_xmalloc(n);
    ok = gm_regex_full_match(re, buf, pct_decode(s, n, buf));
    if (buf != stack)
        free(buf);
    return ok;
}

static bool query_matches(const struct gm_cvalue *v, const struct gm_req_view *r)
{
    struct qparam p;
    size_t pos = 0;

    if (r->query == NULL)
        return false;
    while (next_param(r->query, r->query_len, &pos, &p)) {
        if (!piece_equals(p.name, p.name_len, v->name))
            continue;
        /* Only the first parameter with this name counts. */
        if (v->type == GM_VALUE_EXACT)
            return piece_equals(p.value, p.value_len, v->value);
        return v->type == GM_VALUE_REGEX && piece_regex(v->re, p.value, p.value_len);
    }
    return false;
}

/* ---- matching ---- */

bool gm_cmatch_matches(const struct gm_cmatch *m, const struct gm_req_view *r)
{
    if (m->method && (r->method == NULL || strcmp(m->method, r->method) != 0))
        return false;
    if (!path_matches(m, r))
        return false;
    for (size_t i = 0; i < m->n_headers; i++)
        if (!header_matches(&m->headers[i], r))
            return false;
    for (size_t i = 0; i < m->n_queries; i++)
        if (!query_matches(&m->queries[i], r))
            return false;
    return true;
}

const struct gm_cmatch *gm_route_select(const struct gm_route_table *t, const struct gm_req_view *r)
{
    if (t == NULL)
        return NULL;
    for (size_t i = 0; i < t->n; i++)
        if (gm_cmatch_matches(t->v[i], r))
            return t->v[i];
    return NULL;
}
