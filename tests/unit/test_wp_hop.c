/* Header hygiene between hops (waypoint/hop.c): hop-by-hop fields, the Connection header's
 * named fields (and the ones it must not be able to strip), TE for HTTP/2, x-forwarded-for,
 * x-request-id and UUIDv4, and Forwarded `for=` parsing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../waypoint/hop.h"
#include "test.h"

static struct gm_hlist list(const char *const *kv)
{
    struct gm_hlist h;

    gm_hlist_init(&h, 0);
    for (size_t i = 0; kv[i]; i += 2)
        gm_hlist_add(&h, kv[i], kv[i + 1]);
    return h;
}

static bool has(const struct gm_hlist *h, const char *name)
{
    return gm_hlist_count(h, name) > 0;
}

static void test_strip(void)
{
    static const char *const kv[] = {
        "Host",
        "a",
        "Connection",
        "keep-alive, X-Private, host, Authorization",
        "Keep-Alive",
        "timeout=5",
        "X-Private",
        "secret",
        "Proxy-Connection",
        "close",
        "Transfer-Encoding",
        "chunked",
        "Upgrade",
        "websocket",
        "TE",
        "trailers, deflate",
        "HTTP2-Settings",
        "AAA",
        "Authorization",
        "Bearer x",
        "X-Keep",
        "yes",
        NULL,
    };
    struct gm_hlist h = list(kv);

    wp_hop_strip(&h, false);
    CHECK(has(&h, "host"));
    CHECK(has(&h, "authorization")); /* protected: a Connection option cannot strip it */
    CHECK(has(&h, "x-keep"));
    CHECK(!has(&h, "connection"));
    CHECK(!has(&h, "keep-alive"));
    CHECK(!has(&h, "x-private"));
    CHECK(!has(&h, "proxy-connection"));
    CHECK(!has(&h, "transfer-encoding"));
    CHECK(!has(&h, "upgrade"));
    CHECK(!has(&h, "te"));
    CHECK(!has(&h, "http2-settings"));
    CHECK_EQ_INT(h.n, 3);
    gm_hlist_done(&h);

    /* toward HTTP/2, "te: trailers" survives (gRPC needs it); other TE values do not */
    h = list(kv);
    wp_hop_strip(&h, true);
    char *te = gm_hlist_get(&h, "te");
    CHECK_EQ_STR(te, "trailers");
    free(te);
    gm_hlist_done(&h);

    static const char *const kv2[] = {"TE", "gzip", "X", "1", NULL};
    h = list(kv2);
    wp_hop_strip(&h, true);
    CHECK(!has(&h, "te"));
    CHECK_EQ_INT(h.n, 1);
    gm_hlist_done(&h);
}

static void test_xff(void)
{
    static const char *const none[] = {NULL};
    static const char *const two[] = {"X-Forwarded-For", "1.1.1.1", "x-forwarded-for",
                                      "2.2.2.2, 3.3.3.3", NULL};
    struct gm_hlist h = list(none);
    char *v;

    CHECK_EQ_INT(wp_hop_xff(&h, "10.0.0.1"), 0);
    v = gm_hlist_get(&h, "x-forwarded-for");
    CHECK_EQ_STR(v, "10.0.0.1");
    free(v);
    gm_hlist_done(&h);

    h = list(two);
    wp_hop_xff(&h, "10.0.0.2");
    CHECK_EQ_INT(gm_hlist_count(&h, "x-forwarded-for"), 1);
    v = gm_hlist_get(&h, "x-forwarded-for");
    CHECK_EQ_STR(v, "1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.2");
    free(v);
    gm_hlist_done(&h);
}

static bool uuid_shape(const char *s)
{
    if (strlen(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')
        return false;
    if (s[14] != '4' || !strchr("89ab", s[19]))
        return false;
    for (int i = 0; i < 36; i++)
        if (s[i] != '-' && !strchr("0123456789abcdef", s[i]))
            return false;
    return true;
}

static void test_request_id(void)
{
    static const char *const none[] = {NULL};
    static const char *const good[] = {"X-Request-Id", "abc-123", NULL};
    static const char *const bad[] = {"x-request-id", "has space", NULL};
    static const char *const dup[] = {"x-request-id", "a", "x-request-id", "b", NULL};
    char id[WP_REQUEST_ID_MAX + 1], u1[37], u2[37];
    struct gm_hlist h;

    wp_hop_uuid4(0, 0, u1);
    CHECK(uuid_shape(u1));
    wp_hop_uuid4(~0ULL, ~0ULL, u1);
    CHECK(uuid_shape(u1));
    wp_hop_uuid4(1, 2, u1);
    wp_hop_uuid4(1, 3, u2);
    CHECK(strcmp(u1, u2) != 0);

    h = list(none);
    CHECK_EQ_INT(wp_hop_request_id(&h, 7, 8, id), 0);
    CHECK(uuid_shape(id));
    char *v = gm_hlist_get(&h, "x-request-id");
    CHECK_EQ_STR(v, id);
    free(v);
    gm_hlist_done(&h);

    h = list(good);
    wp_hop_request_id(&h, 7, 8, id);
    CHECK_EQ_STR(id, "abc-123"); /* kept */
    CHECK_EQ_INT(h.n, 1);
    gm_hlist_done(&h);

    const char *const *replaced[] = {bad, dup};
    for (size_t i = 0; i < 2; i++) {
        h = list(replaced[i]);
        wp_hop_request_id(&h, 7, 8, id);
        CHECK(uuid_shape(id));
        CHECK_EQ_INT(gm_hlist_count(&h, "x-request-id"), 1);
        gm_hlist_done(&h);
    }
}

static void test_forwarded(void)
{
    static const struct {
        const char *v;
        int rc;
        const char *ip;
    } cases[] = {
        {"for=\"10.0.0.1:4242\"", 0, "10.0.0.1"},
        {"for=10.0.0.1", 0, "10.0.0.1"},
        {"For=\"[fd00::1]:80\"", 0, "fd00::1"},
        {"proto=http;for=\"10.0.0.2:1\";by=x", 0, "10.0.0.2"},
        {"for=\"10.0.0.3\", for=10.0.0.4", 0, "10.0.0.3"},
        {"xfor=10.0.0.1", -EINVAL, NULL},
        {"for=unknown", -EINVAL, NULL},
        {"for=\"10.0.0.1", -EINVAL, NULL},
        {"for=", -EINVAL, NULL},
        {"", -EINVAL, NULL},
    };
    char out[64];

    for (size_t i = 0; i < GM_ARRAY_LEN(cases); i++) {
        int rc = wp_hop_forwarded_for(cases[i].v, strlen(cases[i].v), out, sizeof(out));
        CHECK_EQ_INT(rc, cases[i].rc);
        if (rc == 0)
            CHECK_EQ_STR(out, cases[i].ip);
    }
}

/* got (heap, freed here) is want, or both are NULL. */
static void check_and_free(char *got, const char *want)
{
    if (want == NULL)
        CHECK(got == NULL);
    else if (got == NULL)
        CHECK(!"a value was expected");
    else
        CHECK_EQ_STR(got, want);
    free(got);
}

static void test_upgrade(void)
{
    static const struct {
        const char *connection, *upgrade, *want; /* NULL: field absent / no upgrade asked */
    } cases[] = {
        {"Upgrade", "websocket", "websocket"},
        {"keep-alive, upgrade", "websocket", "websocket"},
        {" UPGRADE ,x", "h2c, websocket", "h2c, websocket"},
        {"keep-alive", "websocket", NULL}, /* Connection does not list it */
        {NULL, "websocket", NULL},         /* no Connection */
        {"upgrade", NULL, NULL},           /* nothing to switch to */
        {"upgrade", "", NULL},             /* empty */
        {"upgrade", " , ", NULL},          /* only separators */
        {"upgraded", "websocket", NULL},   /* a token, not a prefix */
    };

    for (size_t i = 0; i < GM_ARRAY_LEN(cases); i++) {
        struct gm_hlist h;
        gm_hlist_init(&h, 0);
        gm_hlist_add(&h, "Host", "a");
        if (cases[i].connection)
            gm_hlist_add(&h, "Connection", cases[i].connection);
        if (cases[i].upgrade)
            gm_hlist_add(&h, "Upgrade", cases[i].upgrade);
        check_and_free(wp_hop_upgrade(&h), cases[i].want);
        gm_hlist_done(&h);
    }
    /* two Upgrade fields are one list; a value over 256 bytes is refused */
    struct gm_hlist h;
    char big[300];
    gm_hlist_init(&h, 0);
    gm_hlist_add(&h, "connection", "upgrade");
    gm_hlist_add(&h, "upgrade", "a");
    gm_hlist_add(&h, "upgrade", "b");
    char *got = wp_hop_upgrade(&h);
    CHECK(got != NULL && strcmp(got, "a,b") == 0);
    free(got);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    gm_hlist_set(&h, "upgrade", big);
    CHECK(wp_hop_upgrade(&h) == NULL);
    gm_hlist_done(&h);
}

static void test_upgrade_allowed(void)
{
    static const struct {
        const char *asked, *allowed, *want;
    } cases[] = {
        {"websocket", "websocket", "websocket"},
        {"WebSocket", "websocket", "WebSocket"},
        {"h2c", "websocket", NULL},
        {"h2c", "websocket, h2c", NULL}, /* never, even when configured */
        {"h2c, websocket", "websocket", "websocket"},
        {"foo, websocket, bar", "bar,websocket", "websocket, bar"},
        {"websocket", "", NULL},
        {"websocket", "none", NULL},
        {"websockets", "websocket", NULL},
    };

    for (size_t i = 0; i < GM_ARRAY_LEN(cases); i++) {
        check_and_free(wp_hop_upgrade_allowed(cases[i].asked, cases[i].allowed), cases[i].want);
    }
    CHECK(wp_hop_tokens_in("websocket", "h2c, WebSocket"));
    CHECK(wp_hop_tokens_in("a, b", "b,a,c"));
    CHECK(!wp_hop_tokens_in("a, d", "a, b"));
    CHECK(!wp_hop_tokens_in("", "a"));
    CHECK(!wp_hop_tokens_in(" , ", "a"));
}

int main(void)
{
    test_strip();
    test_upgrade();
    test_upgrade_allowed();
    test_xff();
    test_request_id();
    test_forwarded();
    return TEST_DONE();
}
