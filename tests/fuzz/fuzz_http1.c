/*
 * Fuzz target: arbitrary bytes as the inner byte stream of a downstream connection, through the
 * waypoint's HTTP/1.1 request path (the strict head validator, then llhttp in strict mode for
 * the framing), requests one after another as on a keep-alive connection. The input is fed in
 * slices whose size comes from the first byte, to exercise heads and chunks cut across reads.
 *
 * Besides "never crash, leak or trip a sanitizer", every accepted head is re-serialized the way
 * the waypoint forwards it (waypoint/h1_write.c) and the result must pass the same validator
 * with the same method, target and framing: what the waypoint sends upstream can never be read
 * two ways (request smuggling).
 *
 * Each head's fields also go through the Upgrade checks (waypoint/hop.c): what the waypoint
 * would pass on is a non-empty list of allowed tokens, never h2c, each one of the protocols the
 * client offered.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../waypoint/h1_parse.h"
#include "../../waypoint/h1_write.h"
#include "../../waypoint/hop.h"
#include "../../waypoint/req.h"

#define FUZZ_MAX_INPUT (256 * 1024)

static const struct wp_h1_limits lim = {.max_head_bytes = 8192, .max_headers = 32};

struct fuzz {
    int requests;
};

static bool framing_field(const char *name, size_t len)
{
    return (len == 14 && strncasecmp(name, "content-length", 14) == 0) ||
           (len == 17 && strncasecmp(name, "transfer-encoding", 17) == 0);
}

/* The forwarded form of the head must read back the same. */
static void roundtrip(const char *buf, const struct wp_h1_head *h, bool has_body)
{
    struct wp_req r;
    struct gm_buf out;
    struct wp_h1_head back;

    wp_req_init(&r, 0);
    r.method = gm_xstrndup(buf + h->method.off, h->method.len);
    r.content_length = h->content_length;
    r.has_body = has_body;
    for (size_t i = 0; i < h->n_fields; i++) {
        const struct wp_h1_field *f = &h->fields[i];
        if (!framing_field(buf + f->name.off, f->name.len))
            gm_hlist_addn(&r.headers, buf + f->name.off, f->name.len, buf + f->value.off,
                          f->value.len);
    }
    if (wp_req_set_target(&r, buf + h->target.off, h->target.len) < 0) {
        wp_req_done(&r);
        return;
    }
    if (gm_hlist_count(&r.headers, "host") == 0)
        gm_hlist_add(&r.headers, "host", "fuzz");
    gm_buf_init(&out, 0);
    if (wp_h1w_request(&out, &r) != 0)
        abort();
    struct wp_h1_limits big = {.max_head_bytes = out.len + 1, .max_headers = h->n_fields + 2};
    wp_h1_head_init(&back, &big);
    if (wp_h1_head_scan(&back, out.data, out.len) != WP_H1_DONE || back.length != out.len)
        abort();
    if (back.chunked != (has_body && h->content_length < 0) ||
        back.content_length != h->content_length)
        abort();
    if (back.method.len != h->method.len ||
        memcmp(out.data + back.method.off, buf + h->method.off, h->method.len) != 0)
        abort();
    wp_h1_head_done(&back);
    gm_buf_done(&out);
    wp_req_done(&r);
}

/* What the waypoint would pass on of an Upgrade the head asks for. */
static void upgrade(const char *buf, const struct wp_h1_head *h)
{
    struct gm_hlist l;

    gm_hlist_init(&l, 0);
    for (size_t i = 0; i < h->n_fields; i++) {
        const struct wp_h1_field *f = &h->fields[i];
        gm_hlist_addn(&l, buf + f->name.off, f->name.len, buf + f->value.off, f->value.len);
    }
    char *asked = wp_hop_upgrade(&l);
    if (asked) {
        char *kept = wp_hop_upgrade_allowed(asked, "websocket, h2c, foo/1");
        if (kept && (kept[0] == '\0' || !wp_hop_tokens_in(kept, asked) ||
                     !wp_hop_tokens_in(kept, "websocket, foo/1") || wp_hop_tokens_in("h2c", kept)))
            abort();
        free(kept);
    }
    free(asked);
    wp_hop_strip(&l, false);
    if (gm_hlist_count(&l, "upgrade") || gm_hlist_count(&l, "connection"))
        abort();
    gm_hlist_done(&l);
}

static int on_head(void *ctx, const char *buf, const struct wp_h1_head *h, bool has_body)
{
    struct fuzz *f = ctx;

    f->requests++;
    roundtrip(buf, h, has_body);
    upgrade(buf, h);
    return 0;
}

static int on_body(void *ctx, const char *p, size_t n)
{
    return 0;
}

static int on_complete(void *ctx, bool keep_alive)
{
    return 0;
}

static const struct wp_h1p_cbs cbs = {on_head, on_body, on_complete};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz f = {0};
    struct wp_h1p p;
    size_t step, off = 0, have = 0;
    char *in;

    if (size == 0 || size > FUZZ_MAX_INPUT)
        return 0;
    step = data[0] ? data[0] : 4096;
    data++;
    size--;
    in = malloc(size + 1);
    wp_h1p_init(&p, &lim, &cbs, &f);
    while (off < size || have > 0) {
        size_t add = size - off < step ? size - off : step;
        memcpy(in + have, data + off, add);
        have += add;
        off += add;
        ssize_t n = wp_h1p_feed(&p, in, have);
        if (n < 0)
            break;
        memmove(in, in + n, have - (size_t)n);
        have -= (size_t)n;
        if (p.state == WP_H1P_DONE) {
            wp_h1p_next(&p);
            continue;
        }
        if (n == 0 && add == 0)
            break; /* an incomplete head at the end of the input */
    }
    wp_h1p_done(&p);
    free(in);
    return 0;
}
