/* Table tests of the echo server's pure parts: query knobs, durations, the codes cycle,
 * fail_first, header canonicalisation and the reply body. */
#include "echo.h"
#include "echo_canon.h"

#include <errno.h>

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static void test_durations(void)
{
    static const struct {
        const char *in;
        int rc;
        uint64_t ms;
    } cases[] = {
        {"500ms", 0, 500},
        {"1s", 0, 1000},
        {"1.5s", 0, 1500},
        {"1m30s", 0, 90000},
        {"100us", 0, 1},
        {"2000000ns", 0, 2},
        {"0", 0, 0},
        {"300s", 0, 300000},
        {"+1s", 0, 1000},
        {".5s", 0, 500},
        {"", -EINVAL, 0},
        {"5", -EINVAL, 0},
        {"-1s", -EINVAL, 0},
        {"1x", -EINVAL, 0},
        {"301s", -EINVAL, 0},
        {"1h", -EINVAL, 0},
        {"s", -EINVAL, 0},
        {"1.s", 0, 1000},
        {"99999999999999999999h", -EINVAL, 0},
    };

    for (size_t i = 0; i < GM_ARRAY_LEN(cases); i++) {
        uint64_t ms = 12345;
        int rc = echo_knobs_duration(cases[i].in, &ms);
        CHECK(rc == cases[i].rc, "duration '%s': rc %d", cases[i].in, rc);
        if (rc == 0 && cases[i].rc == 0)
            CHECK(ms == cases[i].ms, "duration '%s': %llu ms", cases[i].in, (unsigned long long)ms);
    }
}

static int parse(struct echo_knobs *k, const char *q, char *err, size_t errlen)
{
    echo_knobs_init(k);
    return echo_knobs_parse(k, q, strlen(q), err, errlen);
}

static void test_parse(void)
{
    static const struct {
        const char *query;
        int rc;
        uint64_t delay_ms;
        size_t ncodes, nhdrs;
        long fail_first;
    } cases[] = {
        {"", 0, 0, 0, 0, -1},
        {"x=1&y", 0, 0, 0, 0, -1},
        {"delay=500ms", 0, 500, 0, 0, -1},
        {"delay=1%30ms", 0, 10, 0, 0, -1},
        {"delay=1s&delay=2s", 0, 1000, 0, 0, -1},
        {"delay=bad", -EINVAL, 0, 0, 0, -1},
        {"codes=500:2,200:1", 0, 0, 2, 0, -1},
        {"codes=200", 0, 0, 1, 0, -1},
        {"codes=abc", -EINVAL, 0, 0, 0, -1},
        {"codes=500:0", -EINVAL, 0, 0, 0, -1},
        {"codes=99", -EINVAL, 0, 0, 0, -1},
        {"codes=", -EINVAL, 0, 0, 0, -1},
        {"headers=X-A:1,X-B:2", 0, 0, 0, 2, -1},
        {"headers=X-A:a+b", 0, 0, 0, 1, -1},
        {"headers=X-A", -EINVAL, 0, 0, 0, -1},
        {"headers=bad%20name:1", -EINVAL, 0, 0, 0, -1},
        {"headers=X-A:1%0d%0aX-Evil:1", -EINVAL, 0, 0, 0, -1},
        {"fail_first=3&key=k", 0, 0, 0, 0, 3},
        {"fail_first=-1", -EINVAL, 0, 0, 0, -1},
        {"fail_first=x", -EINVAL, 0, 0, 0, -1},
        {"delay=%zz", 0, 0, 0, 0, -1}, /* undecodable parameters are skipped, as Go does */
    };

    for (size_t i = 0; i < GM_ARRAY_LEN(cases); i++) {
        struct echo_knobs k;
        char err[128] = "";
        int rc = parse(&k, cases[i].query, err, sizeof(err));
        CHECK(rc == cases[i].rc, "query '%s': rc %d (%s)", cases[i].query, rc, err);
        if (rc == 0 && cases[i].rc == 0) {
            CHECK(k.delay_ms == cases[i].delay_ms, "query '%s': delay", cases[i].query);
            CHECK(k.ncodes == cases[i].ncodes, "query '%s': ncodes", cases[i].query);
            CHECK(k.nhdrs == cases[i].nhdrs, "query '%s': nhdrs", cases[i].query);
            CHECK(k.fail_first == cases[i].fail_first, "query '%s': fail_first", cases[i].query);
        }
        if (rc < 0)
            CHECK(err[0] != '\0', "query '%s': no reason", cases[i].query);
        echo_knobs_done(&k);
    }
    struct echo_knobs k;
    char err[128];
    CHECK(parse(&k, "headers=X-A:a+b%2CX-C:c", err, sizeof(err)) == 0, "decode");
    CHECK(k.nhdrs == 2 && strcmp(k.hdr_value[0], "a b") == 0, "plus decodes to space");
    echo_knobs_done(&k);
}

static void test_status(void)
{
    struct echo_counters codes = {0}, fails = {0};
    struct echo_knobs k;
    char err[128];
    static const int cycle[] = {500, 500, 200, 500, 500, 200, 500};

    CHECK(parse(&k, "codes=500:2,200:1", err, sizeof(err)) == 0, "%s", err);
    for (size_t i = 0; i < GM_ARRAY_LEN(cycle); i++) {
        int st = echo_knobs_status(&k, &codes, &fails);
        CHECK(st == cycle[i], "codes request %zu: %d", i, st);
    }
    echo_knobs_done(&k);
    /* a different codes string has its own cycle */
    CHECK(parse(&k, "codes=201:1,202:1", err, sizeof(err)) == 0, "%s", err);
    CHECK(echo_knobs_status(&k, &codes, &fails) == 201, "second cycle starts fresh");
    echo_knobs_done(&k);

    static const int ff[] = {503, 503, 200, 200};
    for (size_t i = 0; i < GM_ARRAY_LEN(ff); i++) {
        CHECK(parse(&k, "fail_first=2&key=a", err, sizeof(err)) == 0, "%s", err);
        int st = echo_knobs_status(&k, &codes, &fails);
        CHECK(st == ff[i], "fail_first request %zu: %d", i, st);
        echo_knobs_done(&k);
    }
    CHECK(parse(&k, "fail_first=2&key=b", err, sizeof(err)) == 0, "%s", err);
    CHECK(echo_knobs_status(&k, &codes, &fails) == 503, "another key counts on its own");
    echo_knobs_done(&k);
    CHECK(parse(&k, "", err, sizeof(err)) == 0, "%s", err);
    CHECK(echo_knobs_status(&k, &codes, &fails) == 200, "no knobs: 200");
    echo_knobs_done(&k);
    echo_counters_done(&codes);
    echo_counters_done(&fails);
}

static void test_canon(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"x-header-add", "X-Header-Add"},
        {"CONTENT-TYPE", "Content-Type"},
        {"user-agent", "User-Agent"},
        {"x", "X"},
        {"x--y", "X--Y"},
        {"x_y", "X_y"},
        {"bad name", "bad name"},
        {"with\x01ctl", "with\x01ctl"},
    };

    for (size_t i = 0; i < GM_ARRAY_LEN(cases); i++) {
        char out[64] = "";
        echo_canon(cases[i].in, strlen(cases[i].in), out);
        CHECK(strcmp(out, cases[i].out) == 0, "canon '%s' -> '%s'", cases[i].in, out);
    }
}

static void test_render(void)
{
    static const char want[] = "ServiceVersion=v1\n"
                               "ServicePort=8080\n"
                               "Host=echo:80\n"
                               "URL=/p?q=1\n"
                               "Cluster=\n"
                               "IstioVersion=\n"
                               "Method=PUT\n"
                               "Proto=HTTP/1.1\n"
                               "IP=10.0.0.1\n"
                               "Alpn=\n"
                               "RequestHeader=Accept:*/*\n"
                               "RequestHeader=X-Multi:first\n"
                               "RequestHeader=X-Multi:second\n"
                               "RequestHeader=X-Zed:z\n"
                               "Hostname=echo-v1-abc\n"
                               "BodyLength=3\n"
                               "BodySha256="
                               "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n";
    struct echo_info info = {"v1", "", "", "echo-v1-abc"};
    struct echo_server srv = {0};
    struct echo_conn c = {0};
    uv_loop_t loop;
    struct gm_buf out;

    GM_ASSERT(uv_loop_init(&loop) == 0);
    srv.loop = &loop;
    c.srv = &srv;
    c.handles = 1000; /* never freed through the test's fake connection */
    struct echo_req *r = echo_req_new(&c, 0);
    r->major = 1;
    r->minor = 1;
    CHECK(echo_req_append(r, ECHO_FIELD_URL, "/p?", 3) == 0, "url");
    CHECK(echo_req_append(r, ECHO_FIELD_URL, "q=1", 3) == 0, "url");
    CHECK(echo_req_header(r, "x-zed", 5, "z", 1) == 0, "hdr");
    CHECK(echo_req_header(r, "X-MULTI", 7, "first", 5) == 0, "hdr");
    CHECK(echo_req_header(r, "Host", 4, "echo:80", 7) == 0, "hdr");
    CHECK(echo_req_append(r, ECHO_FIELD_NAME, "acc", 3) == 0, "split name");
    CHECK(echo_req_append(r, ECHO_FIELD_NAME, "ept", 3) == 0, "split name");
    CHECK(echo_req_append(r, ECHO_FIELD_VALUE, " */*  ", 6) == 0, "padded value");
    CHECK(echo_req_header(r, "x-multi", 7, "second", 6) == 0, "hdr");
    CHECK(echo_req_header(r, "Transfer-Encoding", 17, "chunked", 7) == 0, "hdr");
    CHECK(echo_req_set(r, &r->method, "PUT", 3) == 0, "method");
    echo_req_body(r, "a", 1);
    echo_req_body(r, "bc", 2);
    /* echo_req_done() finishes the hash; do the same here without replying */
    unsigned char md[32];
    unsigned int mdlen = 0;
    GM_ASSERT(EVP_DigestFinal_ex(r->sha, md, &mdlen) == 1);
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(r->body_sha + 2 * i, 3, "%02x", md[i]);
    gm_buf_init(&out, 0);
    CHECK(echo_req_render(r, &info, 8080, "10.0.0.1", "", &out) == 0, "render");
    CHECK(out.data && strcmp(out.data, want) == 0, "render:\n%s", out.data ? out.data : "");
    gm_buf_done(&out);

    /* caps: a header section past ECHO_MAX_HEADER_BYTES is refused and flagged */
    char big[4096];
    memset(big, 'a', sizeof(big));
    int rc = 0;
    for (int i = 0; i < 64 && rc == 0; i++)
        rc = echo_req_header(r, "x-big", 5, big, sizeof(big));
    CHECK(rc == -ENOBUFS && r->too_large, "header cap: rc %d", rc);
    echo_req_close(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    GM_ASSERT(uv_loop_close(&loop) == 0);
}

int main(void)
{
    test_durations();
    test_parse();
    test_status();
    test_canon();
    test_render();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("echo knobs: all checks passed\n");
    return 0;
}
