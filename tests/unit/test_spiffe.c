/* SPIFFE ID parsing and formatting: tables of valid and invalid IDs. */
#include <errno.h>
#include <string.h>

#include "gammamesh/spiffe.h"
#include "gammamesh/util.h"
#include "test.h"

struct valid_case {
    const char *in;
    const char *td, *ns, *sa;
};

static const struct valid_case valid[] = {
    {"spiffe://cluster.local/ns/default/sa/default", "cluster.local", "default", "default"},
    {"spiffe://td/ns/a/sa/b", "td", "a", "b"},
    {"spiffe://my_corp-1.example.org/ns/kube-system/sa/coredns", "my_corp-1.example.org",
     "kube-system", "coredns"},
    {"spiffe://cluster.local/ns/n1/sa/bookinfo.productpage-v1", "cluster.local", "n1",
     "bookinfo.productpage-v1"},
    {"spiffe://0.1/ns/0/sa/9", "0.1", "0", "9"},
    {"spiffe://-_-/ns/x/sa/y", "-_-", "x", "y"}, /* the SPIFFE set allows these anywhere */
};

static const char *const invalid[] = {
    "",
    "spiffe://",
    "spiffe:///ns/a/sa/b",              /* empty trust domain */
    "spiffe://td/ns//sa/b",             /* empty namespace */
    "spiffe://td/ns/a/sa/",             /* empty service account */
    "spiffe://td/ns/a/sa/b/",           /* trailing slash */
    "spiffe://td/ns/a/sa/b/c",          /* extra segment */
    "spiffe://td/ns/a/sa/b/sa/c",       /* extra segments */
    "spiffe://td/x/ns/a/sa/b",          /* extra leading segment */
    "spiffe://td/ns/a",                 /* too few */
    "spiffe://td/ns/a/sa",              /* too few */
    "spiffe://td",                      /* no path */
    "spiffe://td/",                     /* no path */
    "SPIFFE://td/ns/a/sa/b",            /* uppercase scheme */
    "Spiffe://td/ns/a/sa/b",            /* mixed-case scheme */
    "spiffe:/td/ns/a/sa/b",             /* one slash */
    "spiffe:td/ns/a/sa/b",              /* no authority */
    "https://td/ns/a/sa/b",             /* other scheme */
    " spiffe://td/ns/a/sa/b",           /* leading space */
    "spiffe://td/ns/a/sa/b ",           /* trailing space */
    "spiffe://td/NS/a/sa/b",            /* literal words are lower case */
    "spiffe://td/ns/a/SA/b",            /* literal words are lower case */
    "spiffe://td/namespace/a/sa/b",     /* wrong literal */
    "spiffe://td/sa/b/ns/a",            /* swapped */
    "spiffe://Cluster.local/ns/a/sa/b", /* uppercase trust domain */
    "spiffe://td/ns/Default/sa/b",      /* uppercase namespace */
    "spiffe://td/ns/a/sa/B",            /* uppercase service account */
    "spiffe://td/ns/../sa/b",           /* dot segment */
    "spiffe://td/ns/./sa/b",            /* dot segment */
    "spiffe://td/ns/a/sa/..",           /* dot segment */
    "spiffe://td/ns/a/sa/a..b",         /* empty DNS label */
    "spiffe://td/ns/a/sa/.b",           /* leading dot */
    "spiffe://td/ns/a/sa/b.",           /* trailing dot */
    "spiffe://td/ns/a/sa/-b",           /* label starts with '-' */
    "spiffe://td/ns/a/sa/b.-c",         /* label starts with '-' */
    "spiffe://td/ns/a-/sa/b",           /* namespace ends with '-' */
    "spiffe://td/ns/a.b/sa/c",          /* namespace is one DNS label */
    "spiffe://td/ns/a_b/sa/c",          /* '_' not in DNS names */
    "spiffe://td../ns/a/sa/b",          /* empty trust-domain label */
    "spiffe://.td/ns/a/sa/b",           /* leading dot */
    "spiffe://td./ns/a/sa/b",           /* trailing dot */
    "spiffe://td:8080/ns/a/sa/b",       /* port */
    "spiffe://user@td/ns/a/sa/b",       /* userinfo */
    "spiffe://td/ns/a/sa/b?x=1",        /* query */
    "spiffe://td/ns/a/sa/b#frag",       /* fragment */
    "spiffe://td/ns/a%2Fb/sa/c",        /* percent-encoding */
    "spiffe://td/ns/a/sa/%62",          /* percent-encoding */
    "spiffe://t%64/ns/a/sa/b",          /* percent-encoding */
    "spiffe://td//ns/a/sa/b",           /* doubled slash */
    "spiffe://td/ns/a//sa/b",           /* doubled slash */
    "spiffe://td/ns/a/sa//b",           /* doubled slash */
    "spiffe://[::1]/ns/a/sa/b",         /* IP literal */
    "spiffe://td/ns/a\\b/sa/c",         /* backslash */
    "spiffe://td/ns/\xc3\xa9/sa/b",     /* non-ASCII */
};

static void test_valid(void)
{
    char buf[GM_SPIFFE_ID_MAX];

    for (size_t i = 0; i < GM_ARRAY_LEN(valid); i++) {
        const struct valid_case *c = &valid[i];
        struct gm_spiffe_id id, again;
        CHECK_EQ_INT(gm_spiffe_parse(c->in, strlen(c->in), &id), 0);
        CHECK_EQ_STR(id.trust_domain, c->td);
        CHECK_EQ_STR(id.ns, c->ns);
        CHECK_EQ_STR(id.sa, c->sa);
        CHECK_EQ_INT(gm_spiffe_format(&id, buf, sizeof(buf)), 0);
        CHECK_EQ_STR(buf, c->in);
        CHECK_EQ_INT(gm_spiffe_init(&again, c->td, c->ns, c->sa), 0);
        CHECK(gm_spiffe_equal(&id, &again));
    }
}

static void test_invalid(void)
{
    for (size_t i = 0; i < GM_ARRAY_LEN(invalid); i++) {
        struct gm_spiffe_id id;
        int rc = gm_spiffe_parse(invalid[i], strlen(invalid[i]), &id);
        if (rc != -EINVAL)
            fprintf(stderr, "accepted: \"%s\"\n", invalid[i]);
        CHECK_EQ_INT(rc, -EINVAL);
        CHECK_EQ_STR(id.trust_domain, ""); /* zeroed on failure */
    }
}

/* The length is authoritative: bytes past it are ignored, a NUL within it is an error. */
static void test_length_and_nul(void)
{
    static const char with_nul[] = "spiffe://td/ns/a/sa/b\0c";
    static const char nul_inside[] = "spiffe://td/ns/a\0/sa/b";
    struct gm_spiffe_id id;

    CHECK_EQ_INT(gm_spiffe_parse(with_nul, sizeof(with_nul) - 1, &id), -EINVAL);
    CHECK_EQ_INT(gm_spiffe_parse(nul_inside, sizeof(nul_inside) - 1, &id), -EINVAL);
    CHECK_EQ_INT(gm_spiffe_parse(with_nul, strlen(with_nul), &id), 0);
    CHECK_EQ_STR(id.sa, "b");
    CHECK_EQ_INT(gm_spiffe_parse("spiffe://td/ns/a/sa/bcd", 21, &id), 0); /* "...sa/b" */
    CHECK_EQ_STR(id.sa, "b");
    CHECK_EQ_INT(gm_spiffe_parse(NULL, 0, &id), -EINVAL);
    CHECK_EQ_INT(gm_spiffe_parse("spiffe://td/ns/a/sa/b", 0, &id), -EINVAL);
}

/* Build "spiffe://<td>/ns/<ns>/sa/<sa>" with parts of the given lengths. */
static int parse_sized(size_t td, size_t ns, size_t sa)
{
    char in[2048], a[600], b[600], c[600];
    struct gm_spiffe_id id;

    memset(a, 'a', td);
    a[td] = '\0';
    memset(b, 'b', ns);
    b[ns] = '\0';
    memset(c, 'c', sa);
    c[sa] = '\0';
    snprintf(in, sizeof(in), "spiffe://%s/ns/%s/sa/%s", a, b, c);
    return gm_spiffe_parse(in, strlen(in), &id);
}

static void test_caps(void)
{
    struct gm_spiffe_id id;
    char buf[GM_SPIFFE_ID_MAX];

    CHECK_EQ_INT(parse_sized(255, 63, 253), 0);
    CHECK_EQ_INT(parse_sized(256, 63, 253), -EINVAL);
    CHECK_EQ_INT(parse_sized(255, 64, 253), -EINVAL);
    CHECK_EQ_INT(parse_sized(255, 63, 254), -EINVAL);
    CHECK_EQ_INT(parse_sized(500, 1, 1), -EINVAL);

    /* the largest ID fits GM_SPIFFE_ID_MAX exactly */
    memset(&id, 0, sizeof(id));
    memset(id.trust_domain, 'a', GM_SPIFFE_TD_MAX);
    memset(id.ns, 'b', GM_SPIFFE_NS_MAX);
    memset(id.sa, 'c', GM_SPIFFE_SA_MAX);
    CHECK_EQ_INT(gm_spiffe_format(&id, buf, sizeof(buf)), 0);
    CHECK_EQ_INT(strlen(buf), GM_SPIFFE_ID_MAX - 1);
    CHECK_EQ_INT(gm_spiffe_format(&id, buf, sizeof(buf) - 1), -ENOSPC);
    CHECK_EQ_STR(buf, "");
}

static void test_init_and_equal(void)
{
    struct gm_spiffe_id a, b;

    CHECK_EQ_INT(gm_spiffe_init(&a, "cluster.local", "default", "sleep"), 0);
    CHECK_EQ_INT(gm_spiffe_init(&b, "cluster.local", "default", "sleep"), 0);
    CHECK(gm_spiffe_equal(&a, &b));
    CHECK_EQ_INT(gm_spiffe_init(&b, "cluster.local", "default", "sleep2"), 0);
    CHECK(!gm_spiffe_equal(&a, &b));
    CHECK_EQ_INT(gm_spiffe_init(&b, "other.td", "default", "sleep"), 0);
    CHECK(!gm_spiffe_equal(&a, &b));
    CHECK_EQ_INT(gm_spiffe_init(&b, "cluster.local", "a/b", "sleep"), -EINVAL);
    CHECK_EQ_INT(gm_spiffe_init(&b, "", "default", "sleep"), -EINVAL);
    CHECK_EQ_INT(gm_spiffe_init(&b, "td", "default", ""), -EINVAL);
    CHECK(gm_spiffe_td_valid("cluster.local", 13));
    CHECK(!gm_spiffe_td_valid("cluster..local", 14));
    CHECK(!gm_spiffe_td_valid("Cluster.local", 13));
}

int main(void)
{
    test_valid();
    test_invalid();
    test_length_and_nul();
    test_caps();
    test_init_and_equal();
    return TEST_DONE();
}
