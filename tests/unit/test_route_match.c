/* Route matching: path types, headers, query parameters, methods, Gateway API precedence and
 * the regex limits. Compiled matches are built by hand, as common/route.c would build them. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gammamesh/route.h"
#include "test.h"

/* ---- building requests ---- */

struct req {
    struct gm_req_view v;
    struct gm_hdr h[16];
};

/* target is "path[?query]"; hdrs is a NULL-terminated list of "Name: value" (borrowed). */
static void req_init(struct req *r, const char *method, const char *target, const char *const *hdrs)
{
    const char *q = strchr(target, '?');

    memset(r, 0, sizeof(*r));
    r->v.method = method;
    r->v.path = target;
    r->v.path_len = q ? (size_t)(q - target) : strlen(target);
    if (q) {
        r->v.query = q + 1;
        r->v.query_len = strlen(q + 1);
    }
    for (size_t i = 0; hdrs && hdrs[i]; i++) {
        const char *colon = strchr(hdrs[i], ':');
        const char *val = colon + 1;
        while (*val == ' ')
            val++;
        r->h[i].name = hdrs[i];
        r->h[i].name_len = (size_t)(colon - hdrs[i]);
        r->h[i].value = val;
        r->h[i].value_len = strlen(val);
        r->v.n_headers = i + 1;
    }
    r->v.headers = r->h;
}

/* ---- building compiled matches ---- */

static gm_regex *must_compile(const char *pattern)
{
    char err[256];
    gm_regex *re = gm_regex_compile(pattern, err, sizeof(err));

    if (re == NULL)
        fprintf(stderr, "regex %s: %s\n", pattern, err);
    return re;
}

/* Set a match's path the way the compiler does (PathPrefix loses its trailing '/'). */
static void set_path(struct gm_cmatch *m, enum gm_path_match type, const char *value)
{
    size_t len = strlen(value);

    if (type == GM_PATH_PREFIX)
        while (len > 1 && value[len - 1] == '/')
            len--;
    m->path_type = type;
    m->path = value;
    m->path_len = len;
    m->path_re = type == GM_PATH_REGEX ? must_compile(value) : NULL;
}

static void free_match(struct gm_cmatch *m)
{
    gm_regex_free(m->path_re);
    for (size_t i = 0; i < m->n_headers; i++)
        gm_regex_free(m->headers[i].re);
    for (size_t i = 0; i < m->n_queries; i++)
        gm_regex_free(m->queries[i].re);
}

static void set_value(struct gm_cvalue *v, const char *name, enum gm_value_match type,
                      const char *value)
{
    v->name = name;
    v->type = type;
    v->value = value;
    v->re = type == GM_VALUE_REGEX ? must_compile(value) : NULL;
}

/* ---- path matching ---- */

struct path_case {
    enum gm_path_match type;
    const char *value;
    const char *request;
    bool want;
};

static const struct path_case path_cases[] = {
    /* Exact: byte equality of the path, query ignored */
    {GM_PATH_EXACT, "/abc", "/abc", true},
    {GM_PATH_EXACT, "/abc", "/abc?x=1", true},
    {GM_PATH_EXACT, "/abc", "/abc/", false},
    {GM_PATH_EXACT, "/abc", "/Abc", false},
    {GM_PATH_EXACT, "/abc", "/abcd", false},
    {GM_PATH_EXACT, "/abc/", "/abc", false},
    {GM_PATH_EXACT, "/v1", "/v1", true},
    {GM_PATH_EXACT, "/v1", "/v2", false},
    /* PathPrefix: element-wise */
    {GM_PATH_PREFIX, "/v2", "/v2", true},
    {GM_PATH_PREFIX, "/v2", "/v2/", true},
    {GM_PATH_PREFIX, "/v2", "/v2/example", true},
    {GM_PATH_PREFIX, "/v2", "/v2example", false},
    {GM_PATH_PREFIX, "/v2", "/foo/v2/example", false},
    {GM_PATH_PREFIX, "/v2", "/V2", false},
    {GM_PATH_PREFIX, "/v2", "/v", false},
    {GM_PATH_PREFIX, "/v2", "/v2?x=1", true},
    {GM_PATH_PREFIX, "/full", "/full-path-and-host", false},
    {GM_PATH_PREFIX, "/full", "/full/path", true},
    /* a trailing '/' in the configured value is ignored */
    {GM_PATH_PREFIX, "/v2/", "/v2", true},
    {GM_PATH_PREFIX, "/v2/", "/v2/", true},
    {GM_PATH_PREFIX, "/v2/", "/v2/example", true},
    {GM_PATH_PREFIX, "/v2/", "/v2example", false},
    {GM_PATH_PREFIX, "/a/b/", "/a/b/c", true},
    {GM_PATH_PREFIX, "/a/b/", "/a/bc", false},
    /* "/" matches everything */
    {GM_PATH_PREFIX, "/", "/", true},
    {GM_PATH_PREFIX, "/", "/anything/at/all", true},
    {GM_PATH_PREFIX, "/", "", true},
    /* RegularExpression: whole path, case-sensitive */
    {GM_PATH_REGEX, "/v[0-9]+/.*", "/v12/items", true},
    {GM_PATH_REGEX, "/v[0-9]+/.*", "/x/v12/items", false}, /* anchored at the start */
    {GM_PATH_REGEX, "/v[0-9]+", "/v12/items", false},      /* anchored at the end */
    {GM_PATH_REGEX, "/v[0-9]+", "/v12?q=1", true},         /* the query is not the path */
    {GM_PATH_REGEX, "/a|/ab", "/ab", true},                /* alternation under anchoring */
    {GM_PATH_REGEX, "/abc", "/ABC", false},
};

static void test_paths(void)
{
    for (size_t i = 0; i < GM_ARRAY_LEN(path_cases); i++) {
        const struct path_case *c = &path_cases[i];
        struct gm_cmatch m = {0};
        struct req r;
        set_path(&m, c->type, c->value);
        req_init(&r, "GET", c->request, NULL);
        bool got = gm_cmatch_matches(&m, &r.v);
        if (got != c->want)
            fprintf(stderr, "path case %zu: type %d value %s request %s\n", i, c->type, c->value,
                    c->request);
        CHECK_EQ_INT(got, c->want);
        free_match(&m);
    }
}

/* ---- headers ---- */

struct header_case {
    const char *name; /* as compiled: lower-case */
    enum gm_value_match type;
    const char *value;
    const char *hdrs[4];
    bool want;
};

static const struct header_case header_cases[] = {
    {"version", GM_VALUE_EXACT, "one", {"version: one"}, true},
    {"version", GM_VALUE_EXACT, "one", {"VERSION: one"}, true}, /* names: any case */
    {"version", GM_VALUE_EXACT, "one", {"Version: one"}, true},
    {"version", GM_VALUE_EXACT, "one", {"version: One"}, false}, /* values: exact */
    {"version", GM_VALUE_EXACT, "one", {"version: one "}, false},
    {"version", GM_VALUE_EXACT, "one", {"other: one"}, false},
    {"version", GM_VALUE_EXACT, "one", {NULL}, false},
    {"version", GM_VALUE_EXACT, "one", {"version: onex"}, false},
    {"version", GM_VALUE_EXACT, "one", {"version: on"}, false},
    /* a repeated request header is its values joined with "," */
    {"x", GM_VALUE_EXACT, "a,b", {"x: a", "X: b"}, true},
    {"x", GM_VALUE_EXACT, "a,b", {"x: a", "y: z", "x: b"}, true},
    {"x", GM_VALUE_EXACT, "a", {"x: a", "x: b"}, false},
    {"x", GM_VALUE_EXACT, "b", {"x: a", "x: b"}, false},
    {"x", GM_VALUE_EXACT, "a, b", {"x: a", "x: b"}, false},
    {"x", GM_VALUE_EXACT, "a,b,", {"x: a", "x: b"}, false},
    {"x", GM_VALUE_EXACT, "a,b,c", {"x: a", "x: b,c"}, true},
    /* Cookie crumbs (HTTP/2 splits them) join with "; " */
    {"cookie", GM_VALUE_EXACT, "a=1; b=2", {"cookie: a=1", "cookie: b=2"}, true},
    /* regex over the whole (joined) value */
    {"version", GM_VALUE_REGEX, "v[0-9]", {"version: v2"}, true},
    {"version", GM_VALUE_REGEX, "v[0-9]", {"version: v23"}, false},
    {"version", GM_VALUE_REGEX, "v[0-9]", {"version: xv2"}, false},
    {"x", GM_VALUE_REGEX, "a,.*", {"x: a", "x: b"}, true},
    {"x", GM_VALUE_REGEX, ".*", {"x:"}, true},  /* present with an empty value */
    {"x", GM_VALUE_REGEX, ".*", {NULL}, false}, /* absent */
};

static void test_headers(void)
{
    for (size_t i = 0; i < GM_ARRAY_LEN(header_cases); i++) {
        const struct header_case *c = &header_cases[i];
        struct gm_cvalue v;
        struct gm_cmatch m = {0};
        struct req r;
        set_path(&m, GM_PATH_PREFIX, "/");
        set_value(&v, c->name, c->type, c->value);
        m.headers = &v;
        m.n_headers = 1;
        req_init(&r, "GET", "/", c->hdrs);
        bool got = gm_cmatch_matches(&m, &r.v);
        if (got != c->want)
            fprintf(stderr, "header case %zu: %s %s\n", i, c->name, c->value);
        CHECK_EQ_INT(got, c->want);
        free_match(&m);
    }
}

/* All header conditions must hold (AND). */
static void test_headers_and(void)
{
    struct gm_cvalue v[2];
    struct gm_cmatch m = {0};
    struct req r;

    set_path(&m, GM_PATH_PREFIX, "/");
    set_value(&v[0], "a", GM_VALUE_EXACT, "1");
    set_value(&v[1], "b", GM_VALUE_EXACT, "2");
    m.headers = v;
    m.n_headers = 2;
    req_init(&r, "GET", "/", (const char *const[]){"A: 1", "b: 2", NULL});
    CHECK(gm_cmatch_matches(&m, &r.v));
    req_init(&r, "GET", "/", (const char *const[]){"A: 1", NULL});
    CHECK(!gm_cmatch_matches(&m, &r.v));
    req_init(&r, "GET", "/", (const char *const[]){"b: 2", NULL});
    CHECK(!gm_cmatch_matches(&m, &r.v));
}

/* ---- query parameters ---- */

struct query_case {
    const char *name;
    enum gm_value_match type;
    const char *value;
    const char *target;
    bool want;
};

static const struct query_case query_cases[] = {
    {"animal", GM_VALUE_EXACT, "whale", "/?animal=whale", true},
    {"animal", GM_VALUE_EXACT, "whale", "/?animal=dolphin", false},
    {"animal", GM_VALUE_EXACT, "whale", "/", false},
    {"animal", GM_VALUE_EXACT, "whale", "/?", false},
    /* whole-value */
    {"animal", GM_VALUE_EXACT, "whale", "/?animal=whaledolphin", false},
    {"animal", GM_VALUE_EXACT, "whale", "/?animal=wha", false},
    /* first occurrence only */
    {"animal", GM_VALUE_EXACT, "whale", "/?animal=whale&animal=dolphin", true},
    {"animal", GM_VALUE_EXACT, "dolphin", "/?animal=whale&animal=dolphin", false},
    /* extra parameters are ignored; names are case-sensitive */
    {"animal", GM_VALUE_EXACT, "whale", "/?color=blue&animal=whale&x", true},
    {"animal", GM_VALUE_EXACT, "whale", "/?Animal=whale", false},
    {"animal", GM_VALUE_EXACT, "whale", "/?animals=whale", false},
    {"animal", GM_VALUE_EXACT, "whale", "/?xanimal=whale", false},
    {"animal", GM_VALUE_EXACT, "whale", "/?flag&&animal=whale", true},
    /* raw or percent-decoded: either form may match */
    {"animal", GM_VALUE_EXACT, "whale", "/?animal=wh%61le", true},
    {"animal", GM_VALUE_EXACT, "whale", "/?anim%61l=whale", true},
    {"q", GM_VALUE_EXACT, "a b", "/?q=a+b", true},
    {"q", GM_VALUE_EXACT, "a b", "/?q=a%20b", true},
    {"q", GM_VALUE_EXACT, "a+b", "/?q=a+b", true},
    {"q", GM_VALUE_EXACT, "a%2", "/?q=a%2", true}, /* malformed escape stays literal */
    {"q", GM_VALUE_EXACT, "x=y", "/?q=x=y", true}, /* only the first '=' splits */
    /* regex */
    {"animal", GM_VALUE_REGEX, "wh.*", "/?animal=whale", true},
    {"animal", GM_VALUE_REGEX, "wh", "/?animal=whale", false},
    {"animal", GM_VALUE_REGEX, "a b", "/?animal=a%20b", true},
    {"flag", GM_VALUE_REGEX, "", "/?flag", true},
};

static void test_queries(void)
{
    for (size_t i = 0; i < GM_ARRAY_LEN(query_cases); i++) {
        const struct query_case *c = &query_cases[i];
        struct gm_cvalue v;
        struct gm_cmatch m = {0};
        struct req r;
        set_path(&m, GM_PATH_PREFIX, "/");
        set_value(&v, c->name, c->type, c->value);
        m.queries = &v;
        m.n_queries = 1;
        req_init(&r, "GET", c->target, NULL);
        bool got = gm_cmatch_matches(&m, &r.v);
        if (got != c->want)
            fprintf(stderr, "query case %zu: %s=%s target %s\n", i, c->name, c->value, c->target);
        CHECK_EQ_INT(got, c->want);
        free_match(&m);
    }
}

/* A query parameter far longer than the stack buffer is decoded on the heap. */
static void test_long_query(void)
{
    size_t n = 5000;
    char *want = malloc(n + 1), *target = malloc(3 * n + 16);
    struct gm_cvalue v;
    struct gm_cmatch m = {0};
    struct req r;

    memset(want, 'z', n);
    want[n] = '\0';
    strcpy(target, "/?k=");
    for (size_t i = 0; i < n; i++)
        strcat(target + 4 + 3 * i, "%7a");
    set_path(&m, GM_PATH_PREFIX, "/");
    set_value(&v, "k", GM_VALUE_EXACT, want);
    m.queries = &v;
    m.n_queries = 1;
    req_init(&r, "GET", target, NULL);
    CHECK(gm_cmatch_matches(&m, &r.v));
    v.value = "z";
    CHECK(!gm_cmatch_matches(&m, &r.v));
    free(want);
    free(target);
}

/* ---- methods ---- */

static void test_methods(void)
{
    struct gm_cmatch m = {0};
    struct req r;

    set_path(&m, GM_PATH_PREFIX, "/");
    req_init(&r, "POST", "/", NULL);
    CHECK(gm_cmatch_matches(&m, &r.v)); /* no method condition: any */
    m.method = "GET";
    CHECK(!gm_cmatch_matches(&m, &r.v));
    req_init(&r, "GET", "/", NULL);
    CHECK(gm_cmatch_matches(&m, &r.v));
    req_init(&r, "get", "/", NULL);
    CHECK(!gm_cmatch_matches(&m, &r.v)); /* methods are case-sensitive */
    req_init(&r, NULL, "/", NULL);
    CHECK(!gm_cmatch_matches(&m, &r.v));
}

/* ---- precedence ---- */

/* Two routes, two rules each, enough for every tie-break. */
static struct gm_object routes[3];
static struct gm_crule rules[3][2];

static void setup_routes(void)
{
    static const struct {
        const char *ns, *name;
        int64_t created;
    } def[3] = {
        {"ns", "b-route", 100},
        {"ns", "a-route", 200},
        {"a", "y", 200},
    };

    for (size_t i = 0; i < 3; i++) {
        routes[i].kind = GM_KIND_HTTPROUTE;
        routes[i].meta.namespace = (char *)def[i].ns;
        routes[i].meta.name = (char *)def[i].name;
        routes[i].meta.created = def[i].created;
        for (size_t k = 0; k < 2; k++) {
            rules[i][k].route = &routes[i];
            rules[i][k].index = k;
        }
    }
}

static struct gm_cvalue dummy_values[4] = {
    {"h1", GM_VALUE_EXACT, "1", NULL},
    {"h2", GM_VALUE_EXACT, "2", NULL},
    {"h3", GM_VALUE_EXACT, "3", NULL},
    {"h4", GM_VALUE_EXACT, "4", NULL},
};

/* A match for precedence tests: no regex is compiled (cmp never looks at it). */
static struct gm_cmatch pm(enum gm_path_match type, const char *path, const char *method,
                           size_t n_headers, size_t n_queries, const struct gm_crule *rule,
                           size_t match_index)
{
    struct gm_cmatch m = {0};
    size_t len = strlen(path);

    if (type == GM_PATH_PREFIX)
        while (len > 1 && path[len - 1] == '/')
            len--;
    m.rule = rule;
    m.match_index = match_index;
    m.path_type = type;
    m.path = path;
    m.path_len = len;
    m.method = method;
    m.headers = dummy_values;
    m.n_headers = n_headers;
    m.queries = dummy_values;
    m.n_queries = n_queries;
    return m;
}

/* a must win over b, and the comparison must be antisymmetric. */
static void check_wins(const char *what, struct gm_cmatch a, struct gm_cmatch b)
{
    int ab = gm_cmatch_cmp(&a, &b), ba = gm_cmatch_cmp(&b, &a);

    if (!(ab < 0 && ba > 0))
        fprintf(stderr, "precedence: %s: cmp(a,b)=%d cmp(b,a)=%d\n", what, ab, ba);
    CHECK(ab < 0);
    CHECK(ba > 0);
}

static void test_precedence(void)
{
    const struct gm_crule *r0 = &rules[0][0], *r0b = &rules[0][1];
    const struct gm_crule *r1 = &rules[1][0], *r2 = &rules[2][0];
    enum gm_path_match E = GM_PATH_EXACT, P = GM_PATH_PREFIX, R = GM_PATH_REGEX;

    setup_routes();
    /* 1. Exact beats any prefix, even a longer one, and beats every other criterion */
    check_wins("exact > longer prefix", pm(E, "/a", NULL, 0, 0, r1, 0),
               pm(P, "/a/b/c/d", "GET", 4, 4, r0, 0));
    /* 2. the longer prefix wins, whatever follows */
    check_wins("longer prefix", pm(P, "/foo/bar", NULL, 0, 0, r1, 0),
               pm(P, "/foo", "GET", 4, 4, r0, 0));
    check_wins("prefix /x beats /", pm(P, "/x", NULL, 0, 0, r1, 0), pm(P, "/", NULL, 1, 0, r0, 0));
    /* a trailing '/' does not count as a character (it is removed when compiled) */
    {
        struct gm_cmatch a = pm(P, "/foo/", NULL, 0, 0, r0, 0),
                         b = pm(P, "/foo", NULL, 0, 0, r0, 0);
        CHECK_EQ_INT(a.path_len, b.path_len);
        CHECK_EQ_INT(gm_cmatch_cmp(&a, &b), 0);
    }
    /* regex paths rank after exact and prefix paths (even "/") */
    check_wins("prefix / > regex", pm(P, "/", NULL, 0, 0, r1, 0),
               pm(R, "/very/long/regex/.*", "GET", 4, 4, r0, 0));
    check_wins("exact > regex", pm(E, "/x", NULL, 0, 0, r1, 0), pm(R, "/x", "GET", 1, 1, r0, 0));
    /* between regexes the pattern length does not matter, the next criteria decide */
    check_wins("regex: method", pm(R, "/x", "GET", 0, 0, r1, 0),
               pm(R, "/much/longer/.*", NULL, 0, 0, r0, 0));
    /* 3. a method condition beats more headers */
    check_wins("method", pm(P, "/foo", "GET", 0, 0, r1, 0), pm(P, "/foo", NULL, 4, 4, r0, 0));
    /* 4. more headers beat more queries */
    check_wins("headers", pm(P, "/foo", "GET", 2, 0, r1, 0), pm(P, "/foo", "GET", 1, 4, r0, 0));
    /* 5. more queries beat an older route */
    check_wins("queries", pm(P, "/foo", NULL, 1, 1, r1, 0), pm(P, "/foo", NULL, 1, 0, r0, 0));
    /* 6. the older route beats the alphabetically first one */
    check_wins("older route", pm(P, "/foo", NULL, 1, 1, r0b, 1), pm(P, "/foo", NULL, 1, 1, r1, 0));
    /* 7. same age: "namespace/name" in byte order; "a/y" < "ns/a-route" */
    check_wins("ns/name", pm(P, "/foo", NULL, 0, 0, r2, 0), pm(P, "/foo", NULL, 0, 0, r1, 0));
    /* 8. same route: the earlier rule, even with a later match index */
    check_wins("rule index", pm(P, "/foo", NULL, 0, 0, &rules[1][0], 3),
               pm(P, "/foo", NULL, 0, 0, &rules[1][1], 0));
    /* 9. same rule: the earlier match */
    check_wins("match index", pm(P, "/foo", NULL, 0, 0, r1, 0), pm(P, "/foo", NULL, 0, 0, r1, 1));
    {
        struct gm_cmatch a = pm(P, "/foo", NULL, 0, 0, r1, 0);
        CHECK_EQ_INT(gm_cmatch_cmp(&a, &a), 0);
    }
}

/* "namespace/name" compares as one string, not namespace first: "a-b/x" < "a/y" because
 * '-' < '/'. */
static void test_precedence_key(void)
{
    struct gm_object o1 = {.meta = {.namespace = "a-b", .name = "x", .created = 5}};
    struct gm_object o2 = {.meta = {.namespace = "a", .name = "y", .created = 5}};
    struct gm_object o3 = {.meta = {.namespace = "a", .name = "yy", .created = 5}};
    struct gm_crule c1 = {.route = &o1}, c2 = {.route = &o2}, c3 = {.route = &o3};

    check_wins("a-b/x < a/y", pm(GM_PATH_PREFIX, "/", NULL, 0, 0, &c1, 0),
               pm(GM_PATH_PREFIX, "/", NULL, 0, 0, &c2, 0));
    check_wins("a/y < a/yy", pm(GM_PATH_PREFIX, "/", NULL, 0, 0, &c2, 0),
               pm(GM_PATH_PREFIX, "/", NULL, 0, 0, &c3, 0));
}

/* ---- selection over a table (the conformance routes, by hand) ---- */

static int cmp_ptr(const void *a, const void *b)
{
    return gm_cmatch_cmp(*(struct gm_cmatch *const *)a, *(struct gm_cmatch *const *)b);
}

struct select_case {
    const char *target;
    const char *hdrs[3];
    int rule; /* -1: no match (404) */
    int match;
};

static void run_select(const char *what, struct gm_cmatch *ms, size_t n,
                       const struct select_case *cases, size_t n_cases)
{
    struct gm_cmatch *ptrs[32];
    struct gm_route_table t = {ptrs, n};

    for (size_t i = 0; i < n; i++)
        ptrs[i] = &ms[i];
    qsort(ptrs, n, sizeof(*ptrs), cmp_ptr);
    for (size_t i = 0; i < n_cases; i++) {
        struct req r;
        req_init(&r, "GET", cases[i].target, cases[i].hdrs);
        const struct gm_cmatch *m = gm_route_select(&t, &r.v);
        int rule = m ? (int)m->rule->index : -1, match = m ? (int)m->match_index : -1;
        if (rule != cases[i].rule || match != cases[i].match)
            fprintf(stderr, "%s case %zu (%s): got rule %d match %d\n", what, i, cases[i].target,
                    rule, match);
        CHECK_EQ_INT(rule, cases[i].rule);
        CHECK_EQ_INT(match, cases[i].match);
    }
}

/* httproute-matching.yaml: rule 0 {PathPrefix /, header version=one},
 * rule 1 {PathPrefix /v2, header version=two}. */
static void test_select_matching(void)
{
    struct gm_object route = {.meta = {.namespace = "ns", .name = "mesh-matching", .created = 1}};
    struct gm_crule cr[2] = {{.route = &route, .index = 0}, {.route = &route, .index = 1}};
    struct gm_cvalue one = {"version", GM_VALUE_EXACT, "one", NULL};
    struct gm_cvalue two = {"version", GM_VALUE_EXACT, "two", NULL};
    struct gm_cmatch ms[4] = {0};
    static const struct select_case cases[] = {
        {"/", {NULL}, 0, 0},
        {"/example", {NULL}, 0, 0},
        {"/", {"version: one"}, 0, 1}, /* the header match is more specific */
        {"/v2", {NULL}, 1, 0},
        {"/v2/", {NULL}, 1, 0},
        {"/v2/example", {NULL}, 1, 0},
        {"/v2example", {NULL}, 0, 0},
        {"/foo/v2/example", {NULL}, 0, 0},
        {"/", {"version: two"}, 1, 1}, /* header-only match (implicit "/") beats bare "/" */
        {"/v2", {"version: two"}, 1, 0},
    };

    set_path(&ms[0], GM_PATH_PREFIX, "/");
    ms[0].rule = &cr[0];
    set_path(&ms[1], GM_PATH_PREFIX, "/");
    ms[1].rule = &cr[0];
    ms[1].match_index = 1;
    ms[1].headers = &one;
    ms[1].n_headers = 1;
    set_path(&ms[2], GM_PATH_PREFIX, "/v2");
    ms[2].rule = &cr[1];
    set_path(&ms[3], GM_PATH_PREFIX, "/");
    ms[3].rule = &cr[1];
    ms[3].match_index = 1;
    ms[3].headers = &two;
    ms[3].n_headers = 1;
    run_select("matching", ms, 4, cases, GM_ARRAY_LEN(cases));
}

/* httproute-query-param-matching.yaml, rules 0..6 (match indices as written). */
static void test_select_query(void)
{
    struct gm_object route = {.meta = {.namespace = "ns", .name = "mesh-qp", .created = 1}};
    struct gm_crule cr[7];
    struct gm_cvalue q[7], h[2];
    struct gm_cmatch ms[8] = {0};
    static const struct select_case cases[] = {
        {"/?animal=whale", {NULL}, 0, 0},
        {"/?animal=dolphin", {NULL}, 1, 0},
        {"/?animal=whale&otherparam=irrelevant", {NULL}, 0, 0},
        {"/?animal=dolphin&color=yellow", {NULL}, 1, 0},
        {"/?color=blue&animal=dolphin", {NULL}, 1, 0},
        {"/?animal=whale&animal=dolphin", {NULL}, 0, 0},
        {"/path1?animal=whale", {NULL}, 2, 0},
        {"/?animal=whale", {"version: one"}, 3, 0},
        {"/path3?animal=shark", {NULL}, 4, 0},
        {"/path4?animal=kraken", {"version: three"}, 4, 1},
        {"/path5?animal=hydra", {NULL}, 5, 0},
        {"/?animal=hydra", {NULL}, 6, 0},
        {"/", {NULL}, -1, -1},
        {"/?animal=whaledolphin", {NULL}, -1, -1},
        {"/path3?animal=kraken", {"version: three"}, -1, -1},
        {"/path4?animal=kraken", {NULL}, -1, -1},
    };

    for (size_t i = 0; i < 7; i++)
        cr[i] = (struct gm_crule){.route = &route, .index = i};
    static const char *animals[7] = {"whale", "dolphin", "whale", "whale",
                                     "shark", "kraken",  "hydra"};
    for (size_t i = 0; i < 7; i++)
        set_value(&q[i], "animal", GM_VALUE_EXACT, animals[i]);
    set_value(&h[0], "version", GM_VALUE_EXACT, "one");
    set_value(&h[1], "version", GM_VALUE_EXACT, "three");
    static const struct {
        const char *path;
        int rule, match, query, header;
    } def[8] = {
        {"/", 0, 0, 0, -1},       {"/", 1, 0, 1, -1},      {"/path1", 2, 0, 2, -1},
        {"/", 3, 0, 3, 0},        {"/path3", 4, 0, 4, -1}, {"/path4", 4, 1, 5, 1},
        {"/path5", 5, 0, -1, -1}, {"/", 6, 0, 6, -1},
    };
    for (size_t i = 0; i < 8; i++) {
        set_path(&ms[i], GM_PATH_PREFIX, def[i].path);
        ms[i].rule = &cr[def[i].rule];
        ms[i].match_index = (size_t)def[i].match;
        if (def[i].query >= 0) {
            ms[i].queries = &q[def[i].query];
            ms[i].n_queries = 1;
        }
        if (def[i].header >= 0) {
            ms[i].headers = &h[def[i].header];
            ms[i].n_headers = 1;
        }
    }
    run_select("query", ms, 8, cases, GM_ARRAY_LEN(cases));
}

static void test_select_empty(void)
{
    struct gm_route_table t = {NULL, 0};
    struct req r;

    req_init(&r, "GET", "/", NULL);
    CHECK(gm_route_select(&t, &r.v) == NULL);
    CHECK(gm_route_select(NULL, &r.v) == NULL);
}

/* ---- regex limits ---- */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_regex(void)
{
    char err[256] = "";
    gm_regex *bad = gm_regex_compile("(unclosed", err, sizeof(err));

    CHECK(bad == NULL);
    CHECK(strstr(err, "offset") != NULL);
    CHECK(!gm_regex_full_match(NULL, "x", 1));

    /* Exponential backtracking (the required final 'b' is present, so PCRE2's quick checks do
     * not reject it up front): without the match limit this takes hours. */
    gm_regex *re = must_compile("(a|aa)+b");
    char subject[64];
    memset(subject, 'a', 60);
    memcpy(subject + 60, "cb", 3);
    double t0 = now_s();
    CHECK(!gm_regex_full_match(re, subject, 62));
    double dt = now_s() - t0;
    if (dt >= 1.0)
        fprintf(stderr, "pathological regex took %.3f s\n", dt);
    CHECK(dt < 1.0);
    /* the same pattern still matches what it should */
    CHECK(gm_regex_full_match(re, "aaab", 4));
    gm_regex_free(re);

    /* bytes, not UTF-8: '.' is one byte, invalid UTF-8 is fine */
    re = must_compile("..");
    CHECK(gm_regex_full_match(re, "\xc3\xa9", 2));
    CHECK(gm_regex_full_match(re, "\xff\xfe", 2));
    gm_regex_free(re);
    /* a pattern cannot switch UTF mode on */
    CHECK(gm_regex_compile("(*UTF)x", err, sizeof(err)) == NULL);
}

int main(void)
{
    test_paths();
    test_headers();
    test_headers_and();
    test_queries();
    test_long_query();
    test_methods();
    test_precedence();
    test_precedence_key();
    test_select_matching();
    test_select_query();
    test_select_empty();
    test_regex();
    return TEST_DONE();
}
