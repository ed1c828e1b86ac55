/* The waypoint's HTTP/1.1 request path: the strict head validator and llhttp framing
 * (waypoint/h1_check.c, waypoint/h1_parse.c), by a table of raw requests, each fed at once and
 * byte by byte; both CVE classes Debian's llhttp 8.1.0 lacks the fixes for (CVE-2023-30589 line
 * endings, CVE-2024-27982 whitespace before a field name), request smuggling shapes, limits,
 * pipelining and keep-alive. Also the HTTP/1.1 serializer (waypoint/h1_write.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../waypoint/h1_parse.h"
#include "../../waypoint/h1_write.h"
#include "test.h"

struct result {
    int status; /* 0: accepted */
    char method[32], target[256];
    size_t n_fields;
    int64_t content_length;
    bool chunked, has_body, complete, keep_alive;
    char body[256];
    size_t body_len;
    size_t consumed;
};

static int on_head(void *ctx, const char *buf, const struct wp_h1_head *h, bool has_body)
{
    struct result *r = ctx;

    snprintf(r->method, sizeof(r->method), "%.*s", (int)h->method.len, buf + h->method.off);
    snprintf(r->target, sizeof(r->target), "%.*s", (int)h->target.len, buf + h->target.off);
    r->n_fields = h->n_fields;
    r->content_length = h->content_length;
    r->chunked = h->chunked;
    r->has_body = has_body;
    return 0;
}

static int on_body(void *ctx, const char *p, size_t n)
{
    struct result *r = ctx;

    if (r->body_len + n < sizeof(r->body)) {
        memcpy(r->body + r->body_len, p, n);
        r->body_len += n;
    }
    return 0;
}

static int on_complete(void *ctx, bool keep_alive)
{
    struct result *r = ctx;

    r->complete = true;
    r->keep_alive = keep_alive;
    return 0;
}

static const struct wp_h1p_cbs cbs = {on_head, on_body, on_complete};
static const struct wp_h1_limits lim = {.max_head_bytes = 1024, .max_headers = 8};

/* Feed raw[0..len) as a connection would (keeping unconsumed bytes), in steps of `step` new
 * bytes; stops at the first complete request or error. */
static void run(const char *raw, size_t len, size_t step, struct result *r)
{
    struct wp_h1p p;
    char *in = malloc(len + 1);
    size_t have = 0, off = 0;

    memset(r, 0, sizeof(*r));
    wp_h1p_init(&p, &lim, &cbs, r);
    while (off < len || have > 0) {
        size_t add = len - off < step ? len - off : step;
        memcpy(in + have, raw + off, add);
        have += add;
        off += add;
        ssize_t n = wp_h1p_feed(&p, in, have);
        if (n < 0) {
            r->status = (int)-n;
            break;
        }
        memmove(in, in + n, have - (size_t)n);
        have -= (size_t)n;
        r->consumed += (size_t)n;
        if (p.state == WP_H1P_DONE || (n == 0 && off == len))
            break;
    }
    wp_h1p_done(&p);
    free(in);
}

struct tcase {
    const char *name;
    const char *raw;
    int status;       /* 0: accepted and complete */
    const char *body; /* accepted: the body, or NULL for none */
    size_t len;       /* 0: strlen(raw) */
};

#define BIG_VALUE                                                                                  \
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" \
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

static const struct tcase cases[] = {
    /* accepted */
    {"simple", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, NULL},
    {"http/1.0 without host", "GET /x HTTP/1.0\r\n\r\n", 0, NULL},
    {"content-length body", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", 0,
     "hello"},
    {"identical content-lengths",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
     "Content-Length: 3\r\n\r\nabc",
     400, NULL},
    {"content-length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", 400,
     NULL},
    {"chunked",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
     0, "hello world"},
    {"chunked upper case",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n"
     "1\r\nx\r\n0\r\n\r\n",
     0, "x"},
    {"chunk extension",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     "1;ext=v\r\nx\r\n0\r\n\r\n",
     0, "x"},
    {"trailers dropped",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     "1\r\nx\r\n0\r\nX-T: v\r\n\r\n",
     0, "x"},
    {"tabs around value", "GET / HTTP/1.1\r\nHost:\ta \t\r\n\r\n", 0, NULL},
    {"obs-text value", "GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n", 0, NULL},
    {"absolute form", "GET http://h.example/p?q HTTP/1.1\r\nHost: h.example\r\n\r\n", 0, NULL},
    {"asterisk form", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0, NULL},
    {"leading empty line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, NULL},
    {"underscore name", "GET / HTTP/1.1\r\nHost: a\r\nX_Y: 1\r\n\r\n", 0, NULL},

    /* CVE-2023-30589: line endings other than CRLF */
    {"bare LF after request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400, NULL},
    {"bare LF after a field", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400, NULL},
    {"bare LF ends the head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400, NULL},
    {"bare CR inside a field", "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400, NULL},
    {"bare CR in the request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400, NULL},
    {"empty field separated by CR", "GET / HTTP/1.1\r\nHost: a\r\n\rContent-Length: 1\r\n\r\nx",
     400, NULL},

    /* CVE-2024-27982: whitespace before a field name, obs-fold */
    {"space before name", "POST / HTTP/1.1\r\nHost: a\r\n Content-Length: 5\r\n\r\nhello", 400,
     NULL},
    {"tab before name", "POST / HTTP/1.1\r\nHost: a\r\n\tContent-Length: 5\r\n\r\nhello", 400,
     NULL},
    {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400, NULL},
    {"space before colon", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello", 400,
     NULL},
    {"tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400, NULL},

    /* smuggling shapes */
    {"CL and TE",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     400, NULL},
    {"TE and CL",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
     "Content-Length: 4\r\n\r\n0\r\n\r\n",
     400, NULL},
    {"differing content-lengths",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
     "Content-Length: 4\r\n\r\nabcd",
     400, NULL},
    {"differing content-length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n",
     400, NULL},
    {"signed content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400,
     NULL},
    {"hex content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc", 400,
     NULL},
    {"spaced content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", 400,
     NULL},
    {"empty content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400, NULL},
    {"huge content-length",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400, NULL},
    {"chunked twice",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     400, NULL},
    {"chunked then gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
     400, NULL},
    {"gzip only", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501, NULL},
    {"xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501, NULL},
    {"chunked with parameter",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", 400, NULL},
    {"TE parameter only", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ;e=1\r\n\r\n", 400,
     NULL},
    {"TE separators only", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , ,\r\n\r\n", 400,
     NULL},
    {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, NULL},
    {"bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     400, NULL},
    {"chunk size bare LF",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5\nhello\r\n0\r\n\r\n",
     400, NULL},
    {"chunk data bare LF",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5\r\nhello\n0\r\n\r\n",
     400, NULL},
    {"chunk extension too long",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;" BIG_VALUE BIG_VALUE
         BIG_VALUE BIG_VALUE BIG_VALUE BIG_VALUE BIG_VALUE BIG_VALUE BIG_VALUE BIG_VALUE BIG_VALUE
             BIG_VALUE BIG_VALUE BIG_VALUE BIG_VALUE BIG_VALUE BIG_VALUE BIG_VALUE BIG_VALUE
                 BIG_VALUE BIG_VALUE BIG_VALUE BIG_VALUE BIG_VALUE "\r\nx\r\n0\r\n\r\n",
     400, NULL},

    /* names, values, request line */
    {"no host", "GET / HTTP/1.1\r\n\r\n", 400, NULL},
    {"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, NULL},
    {"NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400, NULL,
     sizeof("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n") - 1},
    {"control byte in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400, NULL},
    {"DEL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400, NULL},
    {"bad name", "GET / HTTP/1.1\r\nHost: a\r\nX(Y): 1\r\n\r\n", 400, NULL},
    {"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", 400, NULL},
    {"no colon", "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400, NULL},
    {"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400, NULL},
    {"HTTP/2.0 line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, NULL},
    {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, NULL},
    {"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, NULL},
    {"fragment in target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400, NULL},
    {"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, NULL},
    {"authority form", "CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n", 400, NULL},
    {"bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, NULL},

    /* limits (1024 bytes, 8 fields) */
    {"too many fields",
     "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n"
     "F: 1\r\nG: 1\r\nH: 1\r\n\r\n",
     431, NULL},
    {"head too large",
     "GET / HTTP/1.1\r\nHost: a\r\nX: " BIG_VALUE BIG_VALUE BIG_VALUE BIG_VALUE BIG_VALUE BIG_VALUE
     "\r\n\r\n",
     431, NULL},
};

static void check_case(const struct tcase *t, size_t step)
{
    struct result r;

    run(t->raw, t->len ? t->len : strlen(t->raw), step, &r);
    if (r.status != t->status)
        fprintf(stderr, "case \"%s\" (step %zu): status %d, want %d\n", t->name, step, r.status,
                t->status);
    CHECK_EQ_INT(r.status, t->status);
    if (t->status)
        return;
    CHECK(r.complete);
    if (!r.complete)
        fprintf(stderr, "case \"%s\" (step %zu) did not complete\n", t->name, step);
    CHECK_EQ_INT(r.body_len, t->body ? strlen(t->body) : 0);
    CHECK(t->body == NULL || memcmp(r.body, t->body, r.body_len) == 0);
}

static void test_table(void)
{
    static const size_t steps[] = {1, 3, 100000};

    for (size_t i = 0; i < GM_ARRAY_LEN(cases); i++)
        for (size_t k = 0; k < GM_ARRAY_LEN(steps); k++)
            check_case(&cases[i], steps[k]);
}

static void test_details(void)
{
    struct result r;
    const char *req = "POST /a/b?c=d HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nX: y\r\n\r\nhi";

    run(req, strlen(req), 1000, &r);
    CHECK_EQ_STR(r.method, "POST");
    CHECK_EQ_STR(r.target, "/a/b?c=d");
    CHECK_EQ_INT(r.n_fields, 3);
    CHECK_EQ_INT(r.content_length, 2);
    CHECK(r.has_body && !r.chunked && r.keep_alive);
    CHECK_EQ_INT(r.consumed, strlen(req));

    req = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    run(req, strlen(req), 1000, &r);
    CHECK(r.complete && !r.keep_alive && !r.has_body);
    req = "GET / HTTP/1.0\r\n\r\n";
    run(req, strlen(req), 1000, &r);
    CHECK(r.complete && !r.keep_alive);
    req = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    run(req, strlen(req), 1000, &r);
    CHECK(r.complete && r.keep_alive);
    req = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    run(req, strlen(req), 1000, &r);
    CHECK(r.complete && r.status == 0); /* Upgrade is dropped, not honoured */
}

/* Two requests in one buffer: the parser stops after the first until wp_h1p_next(). */
static void test_pipelining(void)
{
    const char *two = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                      "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
    struct result r;
    struct wp_h1p p;
    size_t len = strlen(two), first = strlen("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n");

    memset(&r, 0, sizeof(r));
    wp_h1p_init(&p, &lim, &cbs, &r);
    CHECK_EQ_INT(wp_h1p_feed(&p, two, len), first);
    CHECK(r.complete);
    CHECK_EQ_STR(r.target, "/1");
    CHECK_EQ_INT(wp_h1p_feed(&p, two + first, len - first), 0); /* waits for next() */
    wp_h1p_next(&p);
    r.complete = false;
    ssize_t n = wp_h1p_feed(&p, two + first, len - first);
    CHECK(n > 0);
    if (p.state == WP_H1P_BODY)
        n += wp_h1p_feed(&p, two + first + n, len - first - (size_t)n);
    CHECK_EQ_INT(n, len - first);
    CHECK(r.complete);
    CHECK_EQ_STR(r.target, "/2");
    CHECK_EQ_INT(r.body_len, 3);
    wp_h1p_done(&p);
}

static void test_write(void)
{
    struct wp_req r;
    struct gm_buf b;
    struct gm_hlist h;

    wp_req_init(&r, 0);
    r.method = gm_xstrdup("POST");
    wp_req_set_target(&r, "/p?q=1", 6);
    gm_hlist_add(&r.headers, "host", "a");
    gm_hlist_add(&r.headers, "X-Bad", "a\r\nInjected: 1");
    gm_hlist_add(&r.headers, "Bad Name", "v");
    r.has_body = true;
    gm_buf_init(&b, 0);
    CHECK_EQ_INT(wp_h1w_request(&b, &r), 0);
    CHECK_EQ_STR(b.data, "POST /p?q=1 HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n");
    b.len = 0;
    r.content_length = 0;
    wp_h1w_request(&b, &r);
    CHECK(strstr(b.data, "content-length: 0\r\n") != NULL);
    wp_req_done(&r);

    gm_hlist_init(&h, 0);
    gm_hlist_add(&h, "Location", "/x");
    b.len = 0;
    CHECK_EQ_INT(wp_h1w_response(&b, 302, &h, WP_H1W_LENGTH, 0, WP_H1W_CONN_CLOSE), 0);
    CHECK_EQ_STR(b.data, "HTTP/1.1 302 Found\r\nLocation: /x\r\ncontent-length: 0\r\n"
                         "connection: close\r\n\r\n");
    b.len = 0;
    wp_h1w_response(&b, 204, &h, WP_H1W_NONE, -1, WP_H1W_CONN_NONE);
    CHECK(strstr(b.data, "content-length") == NULL);
    CHECK(strstr(b.data, "connection") == NULL);
    b.len = 0;
    wp_h1w_response(&b, 200, &h, WP_H1W_LENGTH, 3, WP_H1W_CONN_KEEP_ALIVE);
    CHECK(strstr(b.data, "connection: keep-alive\r\n") != NULL);
    gm_hlist_done(&h);
    gm_buf_done(&b);

    /* absolute-form sets Host */
    wp_req_init(&r, 0);
    CHECK_EQ_INT(wp_req_set_target(&r, "http://h.example:8080?x", 23), 0);
    CHECK_EQ_STR(r.path, "/");
    CHECK_EQ_STR(r.query, "x");
    CHECK_EQ_STR(wp_req_host(&r), "h.example:8080");
    CHECK_EQ_INT(wp_req_set_target(&r, "http://user@h/", 14), -EINVAL);
    CHECK_EQ_INT(wp_req_set_target(&r, "ftp://h/", 8), -EINVAL);
    wp_req_done(&r);
}

int main(void)
{
    test_table();
    test_details();
    test_pipelining();
    test_write();
    return TEST_DONE();
}
