/* The protocol-neutral request (req.h). */
#include "req.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "gammamesh/util.h"

void wp_req_init(struct wp_req *r, size_t max_bytes)
{
    memset(r, 0, sizeof(*r));
    gm_hlist_init(&r->headers, max_bytes);
    r->content_length = -1;
}

void wp_req_done(struct wp_req *r)
{
    free(r->method);
    free(r->scheme);
    free(r->path);
    free(r->query);
    free(r->target);
    free(r->upgrade);
    gm_hlist_done(&r->headers);
    memset(r, 0, sizeof(*r));
}

static void set_path(struct wp_req *r, const char *p, size_t n)
{
    const char *q = memchr(p, '?', n);

    free(r->path);
    free(r->query);
    r->path = q ? gm_xstrndup(p, (size_t)(q - p)) : gm_xstrndup(p, n);
    r->query = q ? gm_xstrndup(q + 1, n - (size_t)(q + 1 - p)) : NULL;
}

/* "http://authority/path?q": Host becomes the authority (no userinfo allowed). */
static int absolute_form(struct wp_req *r, const char *t, size_t n)
{
    size_t skip = n > 7 && strncasecmp(t, "http://", 7) == 0    ? 7
                  : n > 8 && strncasecmp(t, "https://", 8) == 0 ? 8
                                                                : 0;
    const char *a = t + skip, *end = t + n, *slash;

    if (skip == 0)
        return -EINVAL;
    slash = memchr(a, '/', (size_t)(end - a));
    const char *q = memchr(a, '?', (size_t)(end - a));
    if (q && (slash == NULL || q < slash))
        slash = q;
    const char *aend = slash ? slash : end;
    if (aend == a || memchr(a, '@', (size_t)(aend - a)))
        return -EINVAL;
    char *host = gm_xstrndup(a, (size_t)(aend - a));
    int rc = gm_hlist_set(&r->headers, "host", host);
    free(host);
    if (rc < 0)
        return rc;
    if (slash && *slash == '/') {
        set_path(r, slash, (size_t)(end - slash));
    } else {
        /* "http://h?q" has an empty path: "/" */
        char *p = gm_xasprintf("/%.*s", (int)(end - aend), aend);
        set_path(r, p, strlen(p));
        free(p);
    }
    return 0;
}

int wp_req_set_target(struct wp_req *r, const char *t, size_t n)
{
    int rc = 0;

    if (n == 0)
        return -EINVAL;
    if (t[0] == '/' || (n == 1 && t[0] == '*'))
        set_path(r, t, n);
    else if ((rc = absolute_form(r, t, n)) < 0)
        return rc;
    free(r->target);
    r->target = gm_xstrndup(t, n);
    return 0;
}

void wp_req_view(const struct wp_req *r, struct gm_hdr *views, size_t max, struct gm_req_view *out)
{
    size_t n = gm_hlist_view(&r->headers, views, max);

    out->method = r->method;
    out->path = r->path;
    out->path_len = strlen(r->path);
    out->query = r->query;
    out->query_len = r->query ? strlen(r->query) : 0;
    out->headers = views;
    out->n_headers = n < max ? n : max;
}

const char *wp_req_host(const struct wp_req *r)
{
    for (size_t i = 0; i < r->headers.n; i++)
        if (gm_str_ieq(r->headers.v[i].name, "host"))
            return r->headers.v[i].value;
    return NULL;
}

bool wp_req_is_grpc(const struct wp_req *r)
{
    for (size_t i = 0; i < r->headers.n; i++)
        if (gm_str_ieq(r->headers.v[i].name, "content-type"))
            return strncasecmp(r->headers.v[i].value, "application/grpc", 16) == 0;
    return false;
}
