/* HTTPRoute filters as pure transforms: header lists and modifiers, path rewrites, redirect
 * Locations, weighted backend choice, mirror sampling. See route_filter.h. */
#include <errno.h>
#include <strings.h>

#include "gammamesh/route_filter.h"
#include "gammamesh/util.h"

/* ---- header lists ---- */

static size_t field_cost(size_t name_len, size_t value_len)
{
    return name_len + value_len + GM_HLIST_FIELD_OVERHEAD;
}

static bool field_is(const struct gm_hfield *f, const char *name, size_t len)
{
    return f->name_len == len && strncasecmp(f->name, name, len) == 0;
}

static void field_free(struct gm_hfield *f)
{
    free(f->name);
    free(f->value);
}

/* A NUL-terminated copy of exactly n bytes (an embedded NUL must not shorten it: the stored
 * length is what readers trust). */
static char *copy_bytes(const char *p, size_t n)
{
    char *s = gm_xmalloc(n + 1);

    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void field_fill(struct gm_hfield *f, const char *name, size_t name_len, const char *value,
                       size_t value_len)
{
    f->name = copy_bytes(name, name_len);
    f->name_len = name_len;
    f->value = copy_bytes(value, value_len);
    f->value_len = value_len;
}

void gm_hlist_init(struct gm_hlist *h, size_t max_bytes)
{
    memset(h, 0, sizeof(*h));
    h->max_bytes = max_bytes;
}

void gm_hlist_done(struct gm_hlist *h)
{
    for (size_t i = 0; i < h->n; i++)
        field_free(&h->v[i]);
    free(h->v);
    memset(h, 0, sizeof(*h));
}

static bool fits(const struct gm_hlist *h, size_t freed, size_t cost)
{
    return h->max_bytes == 0 || h->bytes - freed + cost <= h->max_bytes;
}

int gm_hlist_addn(struct gm_hlist *h, const char *name, size_t name_len, const char *value,
                  size_t value_len)
{
    size_t cost = field_cost(name_len, value_len);

    if (name_len == 0)
        return -EINVAL;
    if (!fits(h, 0, cost))
        return -ENOBUFS;
    GM_VEC_PUSH(h->v, h->n, h->cap);
    field_fill(&h->v[h->n - 1], name, name_len, value, value_len);
    h->bytes += cost;
    return 0;
}

int gm_hlist_add(struct gm_hlist *h, const char *name, const char *value)
{
    return gm_hlist_addn(h, name, strlen(name), value, strlen(value));
}

/* Bytes held by the fields called name. */
static size_t bytes_of(const struct gm_hlist *h, const char *name, size_t len)
{
    size_t sum = 0;

    for (size_t i = 0; i < h->n; i++)
        if (field_is(&h->v[i], name, len))
            sum += field_cost(h->v[i].name_len, h->v[i].value_len);
    return sum;
}

/* Remove the fields called name from index `from` on, keeping the order of the rest. */
static size_t remove_from(struct gm_hlist *h, size_t from, const char *name, size_t len)
{
    size_t out = from, removed = 0;

    for (size_t i = from; i < h->n; i++) {
        struct gm_hfield *f = &h->v[i];
        if (field_is(f, name, len)) {
            h->bytes -= field_cost(f->name_len, f->value_len);
            field_free(f);
            removed++;
        } else {
            h->v[out++] = *f;
        }
    }
    h->n = out;
    return removed;
}

int gm_hlist_set(struct gm_hlist *h, const char *name, const char *value)
{
    size_t len = strlen(name), vlen = strlen(value);
    size_t cost = field_cost(len, vlen);

    if (len == 0)
        return -EINVAL;
    if (!fits(h, bytes_of(h, name, len), cost))
        return -ENOBUFS;
    for (size_t i = 0; i < h->n; i++) {
        struct gm_hfield *f = &h->v[i];
        if (!field_is(f, name, len))
            continue;
        h->bytes -= field_cost(f->name_len, f->value_len);
        field_free(f);
        field_fill(f, name, len, value, vlen);
        h->bytes += cost;
        remove_from(h, i + 1, name, len);
        return 0;
    }
    return gm_hlist_addn(h, name, len, value, vlen);
}

size_t gm_hlist_remove(struct gm_hlist *h, const char *name)
{
    return remove_from(h, 0, name, strlen(name));
}

size_t gm_hlist_count(const struct gm_hlist *h, const char *name)
{
    size_t len = strlen(name), c = 0;

    for (size_t i = 0; i < h->n; i++)
        c += field_is(&h->v[i], name, len);
    return c;
}

char *gm_hlist_get(const struct gm_hlist *h, const char *name)
{
    size_t len = strlen(name), total = 0, k = 0;
    char *out;

    for (size_t i = 0; i < h->n; i++)
        if (field_is(&h->v[i], name, len))
            total += h->v[i].value_len + 1;
    if (total == 0)
        return NULL;
    out = gm_xmalloc(total);
    for (size_t i = 0; i < h->n; i++) {
        if (!field_is(&h->v[i], name, len))
            continue;
        if (k)
            out[k++] = ',';
        memcpy(out + k, h->v[i].value, h->v[i].value_len);
        k += h->v[i].value_len;
    }
    out[k] = '\0';
    return out;
}

size_t gm_hlist_view(const struct gm_hlist *h, struct gm_hdr *out, size_t max)
{
    for (size_t i = 0; i < h->n && i < max; i++) {
        out[i].name = h->v[i].name;
        out[i].name_len = h->v[i].name_len;
        out[i].value = h->v[i].value;
        out[i].value_len = h->v[i].value_len;
    }
    return h->n;
}

int gm_hlist_apply(struct gm_hlist *h, const struct gm_header_mod *mod)
{
    int rc;

    if (mod == NULL)
        return 0;
    for (size_t i = 0; i < mod->set.n; i++)
        if ((rc = gm_hlist_set(h, mod->set.v[i].key, mod->set.v[i].value)) < 0)
            return rc;
    for (size_t i = 0; i < mod->add.n; i++)
        if ((rc = gm_hlist_add(h, mod->add.v[i].key, mod->add.v[i].value)) < 0)
            return rc;
    for (size_t i = 0; i < mod->remove.n; i++)
        gm_hlist_remove(h, mod->remove.v[i]);
    return 0;
}

/* ---- paths ---- */

/* Does path start with the compiled PathPrefix element-wise? */
static bool prefix_applies(const char *path, size_t path_len, const char *prefix, size_t plen)
{
    if (plen == 1 && prefix[0] == '/')
        return true;
    return path_len >= plen && memcmp(path, prefix, plen) == 0 &&
           (path_len == plen || path[plen] == '/');
}

char *gm_path_replace_prefix(const char *path, size_t path_len, const char *prefix,
                             size_t prefix_len, const char *repl)
{
    size_t rlen = repl ? strlen(repl) : 0;
    const char *rest;
    size_t rest_len;

    /* A compiled prefix has no trailing '/', but tolerate one from other callers. */
    while (prefix_len > 1 && prefix[prefix_len - 1] == '/')
        prefix_len--;
    if (!prefix_applies(path, path_len, prefix, prefix_len))
        return gm_xstrndup(path, path_len);
    /* The root prefix "/" covers no segment: everything after it (its '/' included) stays. */
    size_t skip = prefix_len == 1 && prefix[0] == '/' ? 0 : prefix_len;
    rest = path + skip;
    rest_len = path_len - skip;
    while (rlen > 0 && repl[rlen - 1] == '/')
        rlen--;
    if (rlen == 0 && rest_len == 0)
        return gm_xstrdup("/");
    if (rest_len > 0 && rest[0] != '/' && rlen > 0)
        return gm_xasprintf("%.*s/%.*s", (int)rlen, repl, (int)rest_len, rest);
    return gm_xasprintf("%.*s%.*s", (int)rlen, repl, (int)rest_len, rest);
}

char *gm_path_rewrite(const struct gm_path_mod *mod, const char *match_prefix,
                      size_t match_prefix_len, const char *path, size_t path_len, const char *query,
                      size_t query_len)
{
    char *p, *out;

    if (mod == NULL || !mod->set)
        p = gm_xstrndup(path, path_len);
    else if (mod->type == GM_PATHMOD_FULL)
        p = gm_xstrdup(mod->value ? mod->value : "/");
    else
        p = gm_path_replace_prefix(path, path_len, match_prefix ? match_prefix : "/",
                                   match_prefix ? match_prefix_len : 1, mod->value);
    if (query == NULL)
        return p;
    out = gm_xasprintf("%s?%.*s", p, (int)query_len, query);
    free(p);
    return out;
}

/* ---- redirects ---- */

static int well_known_port(const char *scheme)
{
    if (strcasecmp(scheme, "http") == 0)
        return 80;
    if (strcasecmp(scheme, "https") == 0)
        return 443;
    return -1;
}

/* Length of the host part of a Host header value: "[v6]:port" keeps the brackets. */
static size_t host_without_port(const char *host)
{
    const char *end;

    if (host[0] == '[') {
        end = strchr(host, ']');
        return end ? (size_t)(end - host) + 1 : strlen(host);
    }
    end = strchr(host, ':');
    return end ? (size_t)(end - host) : strlen(host);
}

static int redirect_port(const struct gm_redirect *rd, const struct gm_redirect_in *in)
{
    if (rd->port > 0)
        return rd->port;
    if (rd->scheme)
        return well_known_port(rd->scheme);
    return in->port;
}

int gm_redirect_location(const struct gm_redirect *rd, const struct gm_redirect_in *in,
                         char **location, int *status)
{
    const char *scheme = rd->scheme ? rd->scheme : in->scheme ? in->scheme : "http";
    const char *host = rd->hostname ? rd->hostname : in->host;
    size_t host_len;
    char portbuf[16] = "";
    char *path;
    int port;

    *location = NULL;
    if (host == NULL || *host == '\0')
        return -EINVAL;
    host_len = rd->hostname ? strlen(host) : host_without_port(host);
    port = redirect_port(rd, in);
    if (port > 0 && port != well_known_port(scheme))
        snprintf(portbuf, sizeof(portbuf), ":%d", port);
    path = gm_path_rewrite(rd->path.set ? &rd->path : NULL, in->match_prefix, in->match_prefix_len,
                           in->path ? in->path : "/", in->path ? in->path_len : 1, in->query,
                           in->query_len);
    *location = gm_xasprintf("%s://%.*s%s%s", scheme, (int)host_len, host, portbuf, path);
    free(path);
    *status = rd->status > 0 ? rd->status : 302;
    return 0;
}

/* ---- backends and mirrors ---- */

int gm_crule_pick(const struct gm_crule *r, uint64_t rnd)
{
    uint64_t at;

    if (r->total_weight == 0)
        return -ENOENT;
    at = rnd % r->total_weight;
    for (size_t i = 0; i < r->n_backends; i++) {
        if (at < r->backends[i].weight)
            return (int)i;
        at -= r->backends[i].weight;
    }
    /* total_weight disagrees with the weights: an invariant of the compiler. */
    GM_ASSERT(!"total_weight exceeds the sum of the backend weights");
    return -ENOENT;
}

bool gm_cmirror_fires(const struct gm_cmirror *m, uint32_t rnd)
{
    uint64_t num = (uint64_t)(m->percent < 0 ? 0 : m->percent), den = 100;

    if (m->fraction_num >= 0 && m->fraction_den > 0) {
        num = (uint64_t)m->fraction_num;
        den = (uint64_t)m->fraction_den;
    }
    if (num >= den)
        return true;
    /* rnd / 2^32 < num / den, exactly. */
    return (uint64_t)rnd * den < num << 32;
}

const char *gm_cmatch_prefix(const struct gm_cmatch *m, size_t *len)
{
    *len = m->path_type == GM_PATH_REGEX ? 0 : m->path_len;
    return m->path_type == GM_PATH_REGEX ? NULL : m->path;
}

int gm_request_filters_apply(const struct gm_cfilters *f, const struct gm_cmatch *m,
                             struct gm_hlist *headers, char **path)
{
    int rc;

    if ((rc = gm_hlist_apply(headers, f->request_header)) < 0)
        return rc;
    if (f->rewrite && f->rewrite->hostname &&
        (rc = gm_hlist_set(headers, "host", f->rewrite->hostname)) < 0)
        return rc;
    if (f->rewrite && f->rewrite->path.set) {
        size_t plen;
        const char *prefix = gm_cmatch_prefix(m, &plen);
        char *p = gm_path_rewrite(&f->rewrite->path, prefix, plen, *path, strlen(*path), NULL, 0);
        free(*path);
        *path = p;
    }
    return 0;
}
