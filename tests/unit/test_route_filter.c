/* Route filters: header lists and modifiers (the conformance header-modifier cases), path
 * rewrites (the ReplacePrefixMatch table of httproute.md §1.6), redirect Locations, weighted
 * backend choice and mirror sampling. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gammamesh/route_filter.h"
#include "test.h"

/* ---- header lists ---- */

static void check_header(const struct gm_hlist *h, const char *name, const char *want)
{
    char *got = gm_hlist_get(h, name);

    CHECK_EQ_STR(got, want);
    free(got);
}

static void test_hlist_basics(void)
{
    struct gm_hlist h;
    struct gm_hdr views[4];

    gm_hlist_init(&h, 0);
    CHECK_EQ_INT(gm_hlist_add(&h, "Host", "echo"), 0);
    CHECK_EQ_INT(gm_hlist_add(&h, "X-A", "1"), 0);
    CHECK_EQ_INT(gm_hlist_add(&h, "Accept", "*/*"), 0);
    CHECK_EQ_INT(gm_hlist_add(&h, "x-a", "2"), 0);
    CHECK_EQ_INT(gm_hlist_add(&h, "", "v"), -EINVAL);
    CHECK_EQ_INT(h.n, 4);
    check_header(&h, "x-A", "1,2"); /* joined with ",", no space, any case */
    check_header(&h, "missing", NULL);
    CHECK_EQ_INT(gm_hlist_count(&h, "X-a"), 2);

    /* set replaces every value at the position of the first, with the new spelling */
    CHECK_EQ_INT(gm_hlist_set(&h, "X-a", "3"), 0);
    CHECK_EQ_INT(h.n, 3);
    CHECK_EQ_STR(h.v[1].name, "X-a");
    CHECK_EQ_STR(h.v[1].value, "3");
    CHECK_EQ_STR(h.v[2].name, "Accept");
    /* set of an absent name appends */
    CHECK_EQ_INT(gm_hlist_set(&h, "New", "n"), 0);
    CHECK_EQ_STR(h.v[3].name, "New");
    CHECK_EQ_INT(gm_hlist_set(&h, "", "n"), -EINVAL);

    CHECK_EQ_INT(gm_hlist_view(&h, views, 4), 4);
    CHECK_EQ_INT(views[2].name_len, 6);
    CHECK(memcmp(views[2].value, "*/*", 3) == 0);
    CHECK_EQ_INT(gm_hlist_view(&h, views, 2), 4); /* fills 2, reports 4 */

    CHECK_EQ_INT(gm_hlist_remove(&h, "HOST"), 1);
    CHECK_EQ_INT(gm_hlist_remove(&h, "host"), 0);
    CHECK_EQ_INT(h.n, 3);
    CHECK_EQ_STR(h.v[0].name, "X-a");
    gm_hlist_done(&h);
    CHECK_EQ_INT(h.n, 0);
    gm_hlist_done(&h); /* twice is fine */
}

static void test_hlist_cap(void)
{
    struct gm_hlist h;
    size_t one = 1 + 1 + GM_HLIST_FIELD_OVERHEAD; /* "a: 1" */

    gm_hlist_init(&h, 2 * one);
    CHECK_EQ_INT(gm_hlist_add(&h, "a", "1"), 0);
    CHECK_EQ_INT(gm_hlist_add(&h, "b", "1"), 0);
    CHECK_EQ_INT(h.bytes, 2 * one);
    CHECK_EQ_INT(gm_hlist_add(&h, "c", "1"), -ENOBUFS);
    CHECK_EQ_INT(h.n, 2);
    /* set counts the bytes it frees */
    CHECK_EQ_INT(gm_hlist_set(&h, "a", "2"), 0);
    CHECK_EQ_INT(gm_hlist_set(&h, "a", "22"), -ENOBUFS);
    check_header(&h, "a", "2");
    CHECK_EQ_INT(gm_hlist_remove(&h, "b"), 1);
    CHECK_EQ_INT(h.bytes, one);
    CHECK_EQ_INT(gm_hlist_set(&h, "c", "1"), 0);
    gm_hlist_done(&h);
}

/* A header modifier built from literals. */
struct mod_def {
    const char *set[3][2];
    const char *add[3][2];
    const char *remove[3];
};

struct mod {
    struct gm_header_mod m;
    struct gm_kv set[3], add[3];
    char *remove[3];
};

static void mod_build(struct mod *out, const struct mod_def *d)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < 3 && d->set[i][0]; i++)
        out->set[out->m.set.n++] = (struct gm_kv){(char *)d->set[i][0], (char *)d->set[i][1]};
    for (size_t i = 0; i < 3 && d->add[i][0]; i++)
        out->add[out->m.add.n++] = (struct gm_kv){(char *)d->add[i][0], (char *)d->add[i][1]};
    for (size_t i = 0; i < 3 && d->remove[i]; i++)
        out->remove[out->m.remove.n++] = (char *)d->remove[i];
    out->m.set.v = out->set;
    out->m.add.v = out->add;
    out->m.remove.v = out->remove;
}

struct modifier_case {
    const char *what;
    struct mod_def mod;
    const char *request[4][2];
    const char *expect[6][2]; /* value NULL: absent */
};

/* The filters of httproute-request-header-modifier.yaml with the requests and expectations of
 * the conformance test that uses it. */
static const struct modifier_case modifier_cases[] = {
    {"set",
     {.set = {{"X-Header-Set", "set-overwrites-values"}}},
     {{"Some-Other-Header", "val"}, {"X-Header-Set", "some-other-value"}},
     {{"Some-Other-Header", "val"}, {"X-Header-Set", "set-overwrites-values"}}},
    {"set absent",
     {.set = {{"X-Header-Set", "set-overwrites-values"}}},
     {{"Some-Other-Header", "val"}},
     {{"x-header-set", "set-overwrites-values"}}},
    {"add",
     {.add = {{"X-Header-Add", "add-appends-values"}}},
     {{"Some-Other-Header", "val"}, {"X-Header-Add", "some-other-value"}},
     {{"X-Header-Add", "some-other-value,add-appends-values"}}},
    {"add absent",
     {.add = {{"X-Header-Add", "add-appends-values"}}},
     {{"Some-Other-Header", "val"}},
     {{"X-Header-Add", "add-appends-values"}, {"Some-Other-Header", "val"}}},
    {"remove",
     {.remove = {"X-Header-Remove"}},
     {{"X-Header-Remove", "val"}, {"Some-Other-Header", "val"}},
     {{"X-Header-Remove", NULL}, {"Some-Other-Header", "val"}}},
    {"multiple",
     {.set = {{"X-Header-Set-1", "header-set-1"}, {"X-Header-Set-2", "header-set-2"}},
      .add = {{"X-Header-Add-1", "header-add-1"},
              {"X-Header-Add-2", "header-add-2"},
              {"X-Header-Add-3", "header-add-3"}},
      .remove = {"X-Header-Remove-1", "X-Header-Remove-2"}},
     {{"X-Header-Set-2", "set-val"},
      {"X-Header-Add-2", "add-val"},
      {"X-Header-Remove-2", "remove-val"},
      {"X-Header-Remove-1", "remove-val-1"}},
     {{"X-Header-Set-1", "header-set-1"},
      {"X-Header-Set-2", "header-set-2"},
      {"X-Header-Add-1", "header-add-1"},
      {"X-Header-Add-2", "add-val,header-add-2"},
      {"X-Header-Add-3", "header-add-3"},
      {"X-Header-Remove-2", NULL}}},
    {"case-insensitivity",
     {.set = {{"X-Header-Set", "header-set"}},
      .add = {{"X-Header-Add", "header-add"}},
      .remove = {"X-Header-Remove"}},
     {{"x-header-set", "original-val-set"},
      {"x-header-add", "original-val-add"},
      {"x-header-remove", "original-val-remove"}},
     {{"X-HEADER-SET", "header-set"},
      {"x-header-add", "original-val-add,header-add"},
      {"x-header-remove", NULL}}},
    /* a repeated request header: set replaces all, remove removes all */
    {"set repeated",
     {.set = {{"x-a", "new"}}, .remove = {"X-B"}},
     {{"X-A", "1"}, {"X-B", "1"}, {"x-a", "2"}, {"x-b", "2"}},
     {{"x-a", "new"}, {"x-b", NULL}}},
};

static void test_modifiers(void)
{
    for (size_t i = 0; i < GM_ARRAY_LEN(modifier_cases); i++) {
        const struct modifier_case *c = &modifier_cases[i];
        struct gm_hlist h;
        struct mod m;
        gm_hlist_init(&h, 0);
        for (size_t k = 0; k < 4 && c->request[k][0]; k++)
            CHECK_EQ_INT(gm_hlist_add(&h, c->request[k][0], c->request[k][1]), 0);
        mod_build(&m, &c->mod);
        CHECK_EQ_INT(gm_hlist_apply(&h, &m.m), 0);
        for (size_t k = 0; k < 6 && c->expect[k][0]; k++) {
            char *got = gm_hlist_get(&h, c->expect[k][0]);
            const char *want = c->expect[k][1];
            if (want == NULL ? got != NULL : got == NULL || strcmp(got, want) != 0)
                fprintf(stderr, "modifier case %s: %s\n", c->what, c->expect[k][0]);
            CHECK_EQ_STR(got, want);
            free(got);
        }
        gm_hlist_done(&h);
    }
}

/* set, then add, then remove: an add of a name also set yields two values; a name both added
 * and removed ends up absent. */
static void test_modifier_order(void)
{
    struct mod_def d = {
        .set = {{"X-S", "s"}}, .add = {{"x-s", "a"}, {"X-R", "r"}}, .remove = {"x-r"}};
    struct gm_hlist h;
    struct mod m;

    mod_build(&m, &d);
    gm_hlist_init(&h, 0);
    CHECK_EQ_INT(gm_hlist_add(&h, "X-S", "old"), 0);
    CHECK_EQ_INT(gm_hlist_apply(&h, &m.m), 0);
    check_header(&h, "x-s", "s,a");
    check_header(&h, "x-r", NULL);
    CHECK_EQ_INT(gm_hlist_apply(&h, NULL), 0);
    gm_hlist_done(&h);

    gm_hlist_init(&h, 40);
    CHECK_EQ_INT(gm_hlist_apply(&h, &m.m), -ENOBUFS);
    gm_hlist_done(&h);
}

/* ---- paths ---- */

struct prefix_case {
    const char *path, *prefix, *repl, *want;
};

static const struct prefix_case prefix_cases[] = {
    /* httproute.md §1.6, row by row */
    {"/foo/bar", "/foo", "/xyz", "/xyz/bar"},
    {"/foo/bar", "/foo", "/xyz/", "/xyz/bar"},
    {"/foo/bar", "/foo/", "/xyz", "/xyz/bar"},
    {"/foo/bar", "/foo/", "/xyz/", "/xyz/bar"},
    {"/foo", "/foo", "/xyz", "/xyz"},
    {"/foo/", "/foo", "/xyz", "/xyz/"},
    {"/foo/bar", "/foo", "", "/bar"},
    {"/foo/", "/foo", "", "/"},
    {"/foo", "/foo", "", "/"},
    {"/foo/", "/foo", "/", "/"},
    {"/foo", "/foo", "/", "/"},
    /* the conformance cases */
    {"/strip-prefix", "/strip-prefix", "/", "/"},
    {"/strip-prefix/three", "/strip-prefix", "/", "/three"},
    {"/prefix/one/two", "/prefix/one", "/one", "/one/two"},
    {"/prefix/rewrite-path-and-modify-headers/one", "/prefix/rewrite-path-and-modify-headers",
     "/prefix", "/prefix/one"},
    {"/original-prefix/lemon", "/original-prefix", "/replacement-prefix",
     "/replacement-prefix/lemon"},
    /* more: deeper segments, the root prefix, no "//" at the seam */
    {"/a/b/c/d", "/a/b", "/x/y", "/x/y/c/d"},
    {"/foo//bar", "/foo", "/xyz", "/xyz//bar"}, /* the request's own "//" is kept */
    {"/bar", "/", "/xyz", "/xyz/bar"},
    {"/", "/", "/xyz", "/xyz/"},
    {"/bar", "/", "", "/bar"},
    {"/", "/", "/", "/"},
    {"/bar/", "/", "/xyz/", "/xyz/bar/"},
    /* a path the prefix does not match is left alone */
    {"/foobar", "/foo", "/xyz", "/foobar"},
    {"/other", "/foo", "/xyz", "/other"},
};

static void test_replace_prefix(void)
{
    for (size_t i = 0; i < GM_ARRAY_LEN(prefix_cases); i++) {
        const struct prefix_case *c = &prefix_cases[i];
        char *got =
            gm_path_replace_prefix(c->path, strlen(c->path), c->prefix, strlen(c->prefix), c->repl);
        if (strcmp(got, c->want) != 0)
            fprintf(stderr, "prefix case %zu: %s %s -> %s\n", i, c->path, c->prefix, c->repl);
        CHECK_EQ_STR(got, c->want);
        free(got);
    }
}

static void test_path_rewrite(void)
{
    struct gm_path_mod full = {true, GM_PATHMOD_FULL, "/one"};
    struct gm_path_mod prefix = {true, GM_PATHMOD_PREFIX, "/one"};
    struct gm_path_mod unset = {0};
    char *s;

    s = gm_path_rewrite(&full, "/full/one", 9, "/full/one/two", 13, "a=1&b=2", 7);
    CHECK_EQ_STR(s, "/one?a=1&b=2");
    free(s);
    s = gm_path_rewrite(&full, "/full/one", 9, "/full/one", 9, NULL, 0);
    CHECK_EQ_STR(s, "/one");
    free(s);
    s = gm_path_rewrite(&prefix, "/prefix/one", 11, "/prefix/one/two", 15, "x", 1);
    CHECK_EQ_STR(s, "/one/two?x");
    free(s);
    s = gm_path_rewrite(&prefix, "/prefix/one", 11, "/prefix/one/two", 15, "", 0);
    CHECK_EQ_STR(s, "/one/two?"); /* an empty query stays */
    free(s);
    s = gm_path_rewrite(&unset, "/p", 2, "/p/q", 4, "k=v", 3);
    CHECK_EQ_STR(s, "/p/q?k=v");
    free(s);
    s = gm_path_rewrite(NULL, NULL, 0, "/p/q", 4, NULL, 0);
    CHECK_EQ_STR(s, "/p/q");
    free(s);
}

/* ---- redirects ---- */

/* The filter: scheme, hostname, port (0: unset), status (0: unset), path modifier. */
struct rd_def {
    const char *scheme, *hostname;
    int port, status;
    struct gm_path_mod path;
};

struct redirect_case {
    const char *what;
    struct rd_def rd;
    const char *scheme; /* request scheme */
    const char *host;   /* Host header */
    int port;           /* Service port addressed */
    const char *target; /* path?query */
    const char *prefix; /* matched PathPrefix */
    const char *want;
    int status;
};

#define RD(...)                                                                                    \
    {                                                                                              \
        __VA_ARGS__                                                                                \
    }
#define PFX(v)                                                                                     \
    {                                                                                              \
        true, GM_PATHMOD_PREFIX, v                                                                 \
    }
#define FULL(v)                                                                                    \
    {                                                                                              \
        true, GM_PATHMOD_FULL, v                                                                   \
    }

static const struct redirect_case redirect_cases[] = {
    /* defaults: request scheme, Host without port, the Service port (80 omitted), 302 */
    {"defaults", RD(), "http", "echo", 80, "/redirect", "/redirect", "http://echo/redirect", 302},
    {"host with port", RD(), "http", "echo:80", 80, "/r", "/r", "http://echo/r", 302},
    {"service port 8080", RD(), "http", "echo:8080", 8080, "/r", "/r", "http://echo:8080/r", 302},
    {"host port ignored", RD(), "http", "echo:9999", 80, "/r", "/r", "http://echo/r", 302},
    {"ipv6 host", RD(), "http", "[fd00::1]:8080", 8080, "/r", "/r", "http://[fd00::1]:8080/r", 302},
    {"https request", RD(), "https", "echo", 443, "/r", "/r", "https://echo/r", 302},
    {"query kept", RD(), "http", "echo", 80, "/r/x?a=1&b", "/r", "http://echo/r/x?a=1&b", 302},
    /* hostname and status (httproute-redirect-host-and-status.yaml) */
    {"hostname", RD(.hostname = "example.org"), "http", "echo", 80, "/hostname-redirect",
     "/hostname-redirect", "http://example.org/hostname-redirect", 302},
    {"host and status", RD(.hostname = "example.org", .status = 301), "http", "echo:80", 80,
     "/host-and-status", "/host-and-status", "http://example.org/host-and-status", 301},
    {"303", RD(.status = 303), "http", "echo", 80, "/redirect", "/redirect", "http://echo/redirect",
     303},
    {"307", RD(.status = 307), "http", "echo", 80, "/temporary", "/temporary",
     "http://echo/temporary", 307},
    {"308", RD(.status = 308), "http", "echo", 80, "/permanent", "/permanent",
     "http://echo/permanent", 308},
    {"status unset", RD(.status = 0), "http", "echo", 80, "/", "/", "http://echo/", 302},
    /* ports (httproute-redirect-port.yaml) */
    {"port", RD(.port = 8083), "http", "echo", 80, "/port", "/port", "http://echo:8083/port", 302},
    {"port and host", RD(.port = 8083, .hostname = "example.org"), "http", "echo", 80,
     "/port-and-host", "/port-and-host", "http://example.org:8083/port-and-host", 302},
    {"port and status", RD(.port = 8083, .status = 301), "http", "echo", 80, "/port-and-status",
     "/port-and-status", "http://echo:8083/port-and-status", 301},
    {"explicit port 80", RD(.port = 80), "http", "echo:8080", 8080, "/p", "/p", "http://echo/p",
     302},
    /* schemes (httproute-redirect-scheme.yaml): the scheme's port, not the Service port */
    {"scheme", RD(.scheme = "https"), "http", "echo", 80, "/scheme", "/scheme",
     "https://echo/scheme", 302},
    {"scheme and host", RD(.scheme = "https", .hostname = "example.org"), "http", "echo", 80,
     "/scheme-and-host", "/scheme-and-host", "https://example.org/scheme-and-host", 302},
    {"scheme and status", RD(.scheme = "https", .status = 301), "http", "echo", 80,
     "/scheme-and-status", "/scheme-and-status", "https://echo/scheme-and-status", 301},
    {"scheme, service port 8080", RD(.scheme = "https"), "http", "echo:8080", 8080, "/s", "/s",
     "https://echo/s", 302},
    {"scheme http from https", RD(.scheme = "http"), "https", "echo:8443", 8443, "/s", "/s",
     "http://echo/s", 302},
    {"scheme and port", RD(.scheme = "https", .port = 8443), "http", "echo", 80, "/s", "/s",
     "https://echo:8443/s", 302},
    {"https on port 80", RD(.scheme = "https", .port = 80), "http", "echo", 80, "/s", "/s",
     "https://echo:80/s", 302},
    {"https explicit 443", RD(.scheme = "https", .port = 443), "http", "echo", 80, "/s", "/s",
     "https://echo/s", 302},
    /* paths (httproute-redirect-path.yaml) */
    {"prefix", RD(.path = PFX("/replacement-prefix")), "http", "echo", 80, "/original-prefix/lemon",
     "/original-prefix", "http://echo/replacement-prefix/lemon", 302},
    {"prefix only", RD(.path = PFX("/replacement-prefix")), "http", "echo", 80, "/original-prefix",
     "/original-prefix", "http://echo/replacement-prefix", 302},
    {"full", RD(.path = FULL("/full-path-replacement")), "http", "echo", 80, "/full/lemon", "/full",
     "http://echo/full-path-replacement", 302},
    {"path and host", RD(.hostname = "example.org", .path = PFX("/replacement-prefix")), "http",
     "echo", 80, "/path-and-host", "/path-and-host", "http://example.org/replacement-prefix", 302},
    {"full and status", RD(.path = FULL("/replacement-full"), .status = 301), "http", "echo", 80,
     "/full-path-and-status", "/full-path-and-status", "http://echo/replacement-full", 301},
    {"full with query", RD(.path = FULL("/f")), "http", "echo", 80, "/x?k=v", "/x",
     "http://echo/f?k=v", 302},
    {"everything",
     RD(.scheme = "https", .hostname = "example.org", .port = 8443, .path = PFX("/new"),
        .status = 308),
     "http", "echo:8080", 8080, "/old/a?q=1", "/old", "https://example.org:8443/new/a?q=1", 308},
};

static void test_redirects(void)
{
    for (size_t i = 0; i < GM_ARRAY_LEN(redirect_cases); i++) {
        const struct redirect_case *c = &redirect_cases[i];
        const char *q = strchr(c->target, '?');
        struct gm_redirect_in in = {
            .scheme = c->scheme,
            .host = c->host,
            .port = c->port,
            .path = c->target,
            .path_len = q ? (size_t)(q - c->target) : strlen(c->target),
            .query = q ? q + 1 : NULL,
            .query_len = q ? strlen(q + 1) : 0,
            .match_prefix = c->prefix,
            .match_prefix_len = strlen(c->prefix),
        };
        struct gm_redirect rd = {
            .scheme = (char *)c->rd.scheme,
            .hostname = (char *)c->rd.hostname,
            .path = c->rd.path,
            .port = c->rd.port ? c->rd.port : -1,
            .status = c->rd.status,
        };
        char *loc = NULL;
        int status = 0;
        CHECK_EQ_INT(gm_redirect_location(&rd, &in, &loc, &status), 0);
        if (loc == NULL || strcmp(loc, c->want) != 0)
            fprintf(stderr, "redirect case %s\n", c->what);
        CHECK_EQ_STR(loc, c->want);
        CHECK_EQ_INT(status, c->status);
        free(loc);
    }
}

static void test_redirect_no_host(void)
{
    struct gm_redirect rd = {.port = -1, .status = 302};
    struct gm_redirect_in in = {.port = 80, .path = "/", .path_len = 1};
    char *loc = (char *)"sentinel";
    int status = 0;

    CHECK_EQ_INT(gm_redirect_location(&rd, &in, &loc, &status), -EINVAL);
    CHECK(loc == NULL);
    /* the filter's hostname is enough; no scheme and no path default to http and "/" */
    rd.hostname = "example.org";
    in.path = NULL;
    CHECK_EQ_INT(gm_redirect_location(&rd, &in, &loc, &status), 0);
    CHECK_EQ_STR(loc, "http://example.org/");
    free(loc);
}

/* ---- backends and mirrors ---- */

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_pick(void)
{
    struct gm_cbackend b[3] = {{.weight = 70}, {.weight = 0}, {.weight = 30}};
    struct gm_crule r = {.backends = b, .n_backends = 3, .total_weight = 100};
    int counts[3] = {0};
    uint64_t seed = 0x9e3779b97f4a7c15ULL;

    /* every value of [0, total) maps to exactly the backend's share */
    for (uint64_t x = 0; x < 100; x++)
        counts[gm_crule_pick(&r, x)]++;
    CHECK_EQ_INT(counts[0], 70);
    CHECK_EQ_INT(counts[1], 0);
    CHECK_EQ_INT(counts[2], 30);
    CHECK_EQ_INT(gm_crule_pick(&r, 69), 0);
    CHECK_EQ_INT(gm_crule_pick(&r, 70), 2);
    CHECK_EQ_INT(gm_crule_pick(&r, 170), 2); /* reduced modulo the total */

    /* random draws: within 1 point of 70/30 over 100000 requests; weight 0 never */
    memset(counts, 0, sizeof(counts));
    for (int i = 0; i < 100000; i++)
        counts[gm_crule_pick(&r, xorshift(&seed))]++;
    CHECK(counts[0] > 69000 && counts[0] < 71000);
    CHECK_EQ_INT(counts[1], 0);
    CHECK_EQ_INT(counts[0] + counts[2], 100000);

    /* nothing to choose: all weights 0, or no backends */
    struct gm_cbackend z[2] = {{.weight = 0}, {.weight = 0}};
    struct gm_crule rz = {.backends = z, .n_backends = 2, .total_weight = 0};
    CHECK_EQ_INT(gm_crule_pick(&rz, 5), -ENOENT);
    struct gm_crule empty = {0};
    CHECK_EQ_INT(gm_crule_pick(&empty, 0), -ENOENT);

    /* a single backend gets everything */
    struct gm_cbackend one[1] = {{.weight = 1}};
    struct gm_crule r1 = {.backends = one, .n_backends = 1, .total_weight = 1};
    CHECK_EQ_INT(gm_crule_pick(&r1, UINT64_MAX), 0);
}

static int mirror_count(const struct gm_cmirror *m, int n)
{
    uint64_t seed = 12345;
    int fired = 0;

    for (int i = 0; i < n; i++)
        fired += gm_cmirror_fires(m, (uint32_t)xorshift(&seed));
    return fired;
}

static void test_mirror(void)
{
    struct gm_cmirror m = {.percent = 100, .fraction_num = -1, .fraction_den = -1};

    CHECK_EQ_INT(mirror_count(&m, 1000), 1000);
    m.percent = 0;
    CHECK_EQ_INT(mirror_count(&m, 1000), 0);
    CHECK(!gm_cmirror_fires(&m, 0));
    m.percent = 50;
    int half = mirror_count(&m, 100000);
    CHECK(half > 49000 && half < 51000);
    CHECK(gm_cmirror_fires(&m, 0));
    CHECK(!gm_cmirror_fires(&m, UINT32_MAX));
    /* a fraction overrides percent */
    m.fraction_num = 1;
    m.fraction_den = 4;
    int quarter = mirror_count(&m, 100000);
    CHECK(quarter > 24000 && quarter < 26000);
    m.fraction_num = 0;
    CHECK_EQ_INT(mirror_count(&m, 1000), 0);
    m.fraction_num = 4;
    CHECK_EQ_INT(mirror_count(&m, 1000), 1000);
}

int main(void)
{
    test_hlist_basics();
    test_hlist_cap();
    test_modifiers();
    test_modifier_order();
    test_replace_prefix();
    test_path_rewrite();
    test_redirects();
    test_redirect_no_host();
    test_pick();
    test_mirror();
    return TEST_DONE();
}
