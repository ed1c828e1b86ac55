/* echo-client: the conformance echo client.
 *
 *   echo-client URL [--method M] [-H Name:value]... [--count N] [--timeout S] [--body STRING]
 *               [--h2]
 *
 * URL is http://host[:port]/path?query. Every request goes over one connection (HTTP/1.1
 * keep-alive, or h2c with prior knowledge with --h2), redialled only when the server closed it.
 * For request i it prints "[i] StatusCode=N", "[i] ResponseHeader=Name:value" per header
 * (canonical names, sorted) and "[i body] LINE" per non-empty body line, or "[i] error=reason".
 * Exit status: 0 when every request got a response, 1 otherwise, 2 on a usage error. */
#include "echo_client.h"
#include "echo_canon.h"

#include <errno.h>
#include <strings.h>

#define DEFAULT_TIMEOUT_MS (10 * 1000)
#define MAX_TIMEOUT_MS     (24ULL * 3600 * 1000)
#define MAX_COUNT          1000000

void ec_resp_init(struct ec_resp *r)
{
    memset(r, 0, sizeof(*r));
    gm_buf_init(&r->body, EC_MAX_BODY);
}

void ec_resp_done(struct ec_resp *r)
{
    for (size_t i = 0; i < r->nhdrs; i++) {
        free(r->hdrs[i].name);
        free(r->hdrs[i].value);
    }
    gm_buf_done(&r->body);
    memset(r, 0, sizeof(*r));
}

int ec_resp_header(struct ec_resp *r, const char *name, size_t nlen, const char *value, size_t vlen)
{
    if (r->nhdrs == EC_MAX_HEADERS || r->hdr_bytes + nlen + vlen > EC_MAX_HEADER_BYTES)
        return -ENOBUFS;
    while (vlen && (*value == ' ' || *value == '\t')) {
        value++;
        vlen--;
    }
    while (vlen && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
        vlen--;
    struct ec_header *h = &r->hdrs[r->nhdrs++];
    h->name = gm_xstrndup(name, nlen);
    echo_canon(name, nlen, h->name);
    h->value = gm_xstrndup(value, vlen);
    h->seq = r->nhdrs;
    r->hdr_bytes += nlen + vlen;
    return 0;
}

static void usage(void)
{
    fputs("usage: echo-client URL [--method M] [-H Name:value]... [--count N] [--timeout S]\n"
          "                   [--body STRING] [--h2]\n"
          "  URL is http://host[:port]/path?query; --timeout is seconds (or 500ms, 2s, 1m)\n",
          stderr);
}

static int bad(const char *what, const char *arg)
{
    fprintf(stderr, "echo-client: %s: '%s'\n", what, arg);
    usage();
    return -EINVAL;
}

/* "10", "2.5", "500ms", "2s", "1m" -> milliseconds. */
static int parse_timeout(const char *s, uint64_t *ms)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    double scale = 1000;

    if (errno || end == s || !(v > 0))
        return -EINVAL;
    if (strcmp(end, "ms") == 0)
        scale = 1;
    else if (strcmp(end, "m") == 0)
        scale = 60000;
    else if (*end && strcmp(end, "s") != 0)
        return -EINVAL;
    v *= scale;
    if (v > (double)MAX_TIMEOUT_MS)
        return -EINVAL;
    *ms = v < 1 ? 1 : (uint64_t)v;
    return 0;
}

static int parse_count(const char *s, long *count)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);

    if (errno || end == s || *end || v < 1 || v > MAX_COUNT)
        return -EINVAL;
    *count = v;
    return 0;
}

static bool valid_value(const char *v)
{
    for (; *v; v++) {
        if ((unsigned char)*v < 0x20 && *v != '\t')
            return false;
    }
    return true;
}

/* "Name:value" (blanks after the colon dropped); Host sets the authority instead. */
static int add_header(struct ec_opts *o, char *arg, char **host_override)
{
    char *colon = strchr(arg, ':');

    if (colon == NULL || colon == arg)
        return bad("-H wants Name:value", arg);
    *colon = '\0';
    char *value = colon + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    for (const char *p = arg; *p; p++) {
        if (!echo_is_tchar((unsigned char)*p))
            return bad("bad header name", arg);
    }
    if (!valid_value(value))
        return bad("bad header value for", arg);
    if (strcasecmp(arg, "host") == 0) {
        *host_override = value;
        return 0;
    }
    if (o->nhdrs == EC_MAX_HEADERS)
        return bad("too many -H", arg);
    o->hdr_name[o->nhdrs] = arg;
    o->hdr_value[o->nhdrs] = value;
    o->nhdrs++;
    return 0;
}

static int parse_port(const char *s, size_t n)
{
    int port = 0;

    if (n == 0 || n > 5)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        port = port * 10 + (s[i] - '0');
    }
    return port >= 1 && port <= 65535 ? port : -EINVAL;
}

/* http://host[:port]/path?query -> host, port, authority, path. */
static int parse_url(struct ec_opts *o, const char *url)
{
    static const char scheme[] = "http://";
    const char *auth, *end, *host, *host_end, *port = NULL;

    if (strncasecmp(url, scheme, sizeof(scheme) - 1) != 0)
        return bad("only http:// URLs are supported", url);
    auth = url + sizeof(scheme) - 1;
    end = auth + strcspn(auth, "/?#");
    if (memchr(auth, '@', (size_t)(end - auth)))
        return bad("user info in URL not supported", url);
    host = auth;
    if (*host == '[') {
        host_end = memchr(host, ']', (size_t)(end - host));
        if (host_end == NULL)
            return bad("bad IPv6 literal in URL", url);
        host++;
        if (host_end + 1 < end && host_end[1] != ':')
            return bad("bad URL authority", url);
        if (host_end + 1 < end)
            port = host_end + 2;
    } else {
        host_end = memchr(host, ':', (size_t)(end - host));
        if (host_end)
            port = host_end + 1;
        else
            host_end = end;
    }
    if (host_end == host)
        return bad("URL has no host", url);
    if (port && parse_port(port, (size_t)(end - port)) < 0)
        return bad("bad port in URL", url);
    o->host = gm_xstrndup(host, (size_t)(host_end - host));
    o->port = port ? gm_xstrndup(port, (size_t)(end - port)) : gm_xstrdup("80");
    o->authority = gm_xstrndup(auth, (size_t)(end - auth));
    size_t plen = strcspn(end, "#");
    o->path = *end == '/' ? gm_xstrndup(end, plen) : gm_xasprintf("/%.*s", (int)plen, end);
    return 0;
}

static const char *const value_flags[] = {"--method", "--count", "--timeout", "--body", "--header"};

/* Match "--flag=v" or "--flag v"; *value is NULL when arg is not one of value_flags. */
static int flag_value(int argc, char **argv, int *i, const char **flag, char **value)
{
    char *arg = argv[*i], *eq = strchr(arg, '=');
    size_t flen = eq ? (size_t)(eq - arg) : strlen(arg);

    *value = NULL;
    if (strncmp(arg, "-H", 2) == 0 && arg[2] != '\0') {
        *flag = "-H";
        *value = arg[2] == '=' ? arg + 3 : arg + 2;
        return 0;
    }
    if (strcmp(arg, "-H") == 0) {
        *flag = "-H";
    } else {
        size_t k;
        for (k = 0; k < GM_ARRAY_LEN(value_flags); k++) {
            if (strlen(value_flags[k]) == flen && strncmp(arg, value_flags[k], flen) == 0)
                break;
        }
        if (k == GM_ARRAY_LEN(value_flags))
            return 0;
        *flag = value_flags[k];
        if (eq) {
            *value = eq + 1;
            return 0;
        }
    }
    if (*i + 1 >= argc)
        return bad("missing value for", arg);
    *value = argv[++*i];
    return 0;
}

static int apply(struct ec_opts *o, const char *flag, char *value, char **host_override)
{
    if (strcmp(flag, "-H") == 0 || strcmp(flag, "--header") == 0)
        return add_header(o, value, host_override);
    if (strcmp(flag, "--method") == 0) {
        for (const char *p = value; *p; p++) {
            if (!echo_is_tchar((unsigned char)*p))
                return bad("bad method", value);
        }
        if (*value == '\0')
            return bad("bad method", value);
        o->method = value;
        return 0;
    }
    if (strcmp(flag, "--count") == 0)
        return parse_count(value, &o->count) < 0 ? bad("bad --count", value) : 0;
    if (strcmp(flag, "--timeout") == 0)
        return parse_timeout(value, &o->timeout_ms) < 0 ? bad("bad --timeout", value) : 0;
    o->body = value;
    return 0;
}

static int parse_args(struct ec_opts *o, int argc, char **argv)
{
    const char *url = NULL;
    char *host_override = NULL;

    o->method = "GET";
    o->count = 1;
    o->timeout_ms = DEFAULT_TIMEOUT_MS;
    for (int i = 1; i < argc; i++) {
        const char *flag = NULL;
        char *value = NULL;
        if (flag_value(argc, argv, &i, &flag, &value) < 0)
            return -EINVAL;
        if (value) {
            if (apply(o, flag, value, &host_override) < 0)
                return -EINVAL;
        } else if (strcmp(argv[i], "--h2") == 0 || strcmp(argv[i], "--http2") == 0) {
            o->h2 = true;
        } else if (argv[i][0] == '-') {
            return bad("unknown option", argv[i]);
        } else if (url) {
            return bad("more than one URL", argv[i]);
        } else {
            url = argv[i];
        }
    }
    if (url == NULL) {
        usage();
        return -EINVAL;
    }
    if (parse_url(o, url) < 0)
        return -EINVAL;
    if (host_override) {
        free(o->authority);
        o->authority = gm_xstrdup(host_override);
    }
    return 0;
}

static void opts_done(struct ec_opts *o)
{
    free(o->host);
    free(o->port);
    free(o->authority);
    free(o->path);
}

static int cmp_header(const void *a, const void *b)
{
    const struct ec_header *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    /* qsort is not stable: equal names keep their arrival order explicitly */
    return c ? c : (x->seq < y->seq ? -1 : x->seq > y->seq);
}

static void print_resp(long i, struct ec_resp *r)
{
    printf("[%ld] StatusCode=%d\n", i, r->status);
    qsort(r->hdrs, r->nhdrs, sizeof(r->hdrs[0]), cmp_header);
    for (size_t k = 0; k < r->nhdrs; k++)
        printf("[%ld] ResponseHeader=%s:%s\n", i, r->hdrs[k].name, r->hdrs[k].value);
    const char *p = r->body.data ? r->body.data : "";
    const char *end = p + r->body.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        size_t shown = n && p[n - 1] == '\r' ? n - 1 : n;
        if (shown)
            printf("[%ld body] %.*s\n", i, (int)shown, p);
        p += n + 1;
    }
}

int main(int argc, char **argv)
{
    struct ec_opts o = {0};
    struct ec_h1 *h1 = NULL;
    struct ec_h2 *h2 = NULL;
    int failures = 0;

    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage();
        return 0;
    }
    if (parse_args(&o, argc, argv) < 0) {
        opts_done(&o);
        return 2;
    }
    if (o.h2)
        h2 = ec_h2_new();
    else
        h1 = ec_h1_new();
    for (long i = 0; i < o.count; i++) {
        struct ec_resp resp;
        char err[EC_ERR_LEN] = "unknown error";
        ec_resp_init(&resp);
        int rc = o.h2 ? ec_h2_request(h2, &o, &resp, err) : ec_h1_request(h1, &o, &resp, err);
        if (rc == 0) {
            print_resp(i, &resp);
        } else {
            printf("[%ld] error=%s\n", i, err);
            failures++;
        }
        fflush(stdout);
        ec_resp_done(&resp);
    }
    ec_h1_free(h1);
    ec_h2_free(h2);
    opts_done(&o);
    return failures ? 1 : 0;
}
