/* Header hygiene between hops (hop.h). */
#include "hop.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gammamesh/util.h"

#define TOKEN_MAX 64 /* longest field name a Connection option may name */

static const char *const always_hop[] = {
    "connection",        "keep-alive", "proxy-connection", "te",
    "transfer-encoding", "upgrade",    "http2-settings",
};

/* Fields that a client's Connection header must not be able to remove. */
static const char *const protected_fields[] = {
    "host",      "authorization", "cookie",         "x-forwarded-for", "x-request-id",
    "forwarded", "traceparent",   "content-length", "content-type",
};

static bool in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (gm_str_ieq(name, list[i]))
            return true;
    return false;
}

/* Calls fn(tok, len) for each comma-separated token of v, trimmed of spaces and tabs. */
static void each_token(const char *v, size_t len, void (*fn)(const char *, size_t, void *),
                       void *arg)
{
    size_t i = 0;

    while (i < len) {
        size_t start, end;
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        start = i;
        while (i < len && v[i] != ',')
            i++;
        end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end > start)
            fn(v + start, end - start, arg);
    }
}

struct named {
    char names[16][TOKEN_MAX + 1];
    size_t n;
};

static void collect_name(const char *tok, size_t len, void *arg)
{
    struct named *nm = arg;

    if (len > TOKEN_MAX || nm->n == GM_ARRAY_LEN(nm->names))
        return;
    memcpy(nm->names[nm->n], tok, len);
    nm->names[nm->n][len] = '\0';
    if (!in_list(nm->names[nm->n], protected_fields, GM_ARRAY_LEN(protected_fields)))
        nm->n++;
}

/* Does the comma-separated list v[0..len) hold the token word[0..wlen) (case-insensitive)? */
struct token_in {
    const char *word;
    size_t len;
    bool found;
};

static void match_token(const char *tok, size_t len, void *arg)
{
    struct token_in *t = arg;

    if (len == t->len && strncasecmp(tok, t->word, len) == 0)
        t->found = true;
}

static bool has_token(const char *v, size_t len, const char *word, size_t wlen)
{
    struct token_in t = {.word = word, .len = wlen};

    each_token(v, len, match_token, &t);
    return t.found;
}

char *wp_hop_upgrade(const struct gm_hlist *h)
{
    bool listed = false;

    for (size_t i = 0; i < h->n && !listed; i++)
        listed = gm_str_ieq(h->v[i].name, "connection") &&
                 has_token(h->v[i].value, h->v[i].value_len, "upgrade", 7);
    if (!listed)
        return NULL;
    char *v = gm_hlist_get(h, "upgrade");
    size_t n = v ? strlen(v) : 0;
    if (n == 0 || n > 256 || strspn(v, " \t,") == n) {
        free(v);
        return NULL;
    }
    return v;
}

struct subset {
    const char *list;
    bool all;
    size_t n;
};

static void check_token(const char *tok, size_t len, void *arg)
{
    struct subset *s = arg;

    s->n++;
    if (!has_token(s->list, strlen(s->list), tok, len))
        s->all = false;
}

bool wp_hop_tokens_in(const char *v, const char *list)
{
    struct subset s = {.list = list, .all = true};

    each_token(v, strlen(v), check_token, &s);
    return s.all && s.n > 0;
}

struct allowed {
    const char *allowed;
    struct gm_buf out;
};

static void keep_allowed(const char *tok, size_t len, void *arg)
{
    struct allowed *a = arg;

    if ((len == 3 && strncasecmp(tok, "h2c", 3) == 0) ||
        !has_token(a->allowed, strlen(a->allowed), tok, len))
        return;
    if (a->out.len)
        gm_buf_append(&a->out, ", ", 2);
    gm_buf_append(&a->out, tok, len);
}

char *wp_hop_upgrade_allowed(const char *asked, const char *allowed)
{
    struct allowed a = {.allowed = allowed ? allowed : ""};
    char *v = NULL;

    if (strcasecmp(a.allowed, "none") == 0)
        return NULL;
    gm_buf_init(&a.out, 0);
    each_token(asked, strlen(asked), keep_allowed, &a);
    if (a.out.len)
        v = gm_xstrndup(a.out.data, a.out.len);
    gm_buf_done(&a.out);
    return v;
}

size_t wp_hop_strip(struct gm_hlist *h, bool keep_te_trailers)
{
    struct named nm = {.n = 0};
    bool trailers = false;
    size_t removed = 0;

    for (size_t i = 0; i < h->n; i++) {
        if (gm_str_ieq(h->v[i].name, "connection"))
            each_token(h->v[i].value, h->v[i].value_len, collect_name, &nm);
        else if (keep_te_trailers && gm_str_ieq(h->v[i].name, "te"))
            trailers = trailers || has_token(h->v[i].value, h->v[i].value_len, "trailers", 8);
    }
    for (size_t i = 0; i < nm.n; i++)
        removed += gm_hlist_remove(h, nm.names[i]);
    for (size_t i = 0; i < GM_ARRAY_LEN(always_hop); i++)
        removed += gm_hlist_remove(h, always_hop[i]);
    if (trailers && gm_hlist_add(h, "te", "trailers") == 0)
        removed--;
    return removed;
}

int wp_hop_xff(struct gm_hlist *h, const char *client)
{
    struct gm_buf b;
    int rc = 0;

    gm_buf_init(&b, 0);
    for (size_t i = 0; i < h->n; i++) {
        if (!gm_str_ieq(h->v[i].name, "x-forwarded-for") || h->v[i].value_len == 0)
            continue;
        if (b.len)
            gm_buf_append(&b, ", ", 2);
        gm_buf_append(&b, h->v[i].value, h->v[i].value_len);
    }
    if (b.len)
        gm_buf_append(&b, ", ", 2);
    gm_buf_append(&b, client, strlen(client));
    rc = gm_hlist_set(h, "x-forwarded-for", b.data);
    gm_buf_done(&b);
    return rc;
}

void wp_hop_uuid4(uint64_t a, uint64_t b, char out[37])
{
    uint8_t u[16];

    for (int i = 0; i < 8; i++) {
        u[i] = (uint8_t)(a >> (8 * i));
        u[8 + i] = (uint8_t)(b >> (8 * i));
    }
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40); /* version 4 */
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    /* 8-4-4-4-12 hex digits: the byte groups 4, 2, 2, 2, 6 */
    char *p = gm_fmt_hex(out, u, 4);
    for (int i = 4; i < 10; i += 2) {
        *p++ = '-';
        p = gm_fmt_hex(p, u + i, 2);
    }
    *p++ = '-';
    *gm_fmt_hex(p, u + 10, 6) = '\0';
}

static bool id_ok(const struct gm_hfield *f)
{
    if (f->value_len == 0 || f->value_len > WP_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < f->value_len; i++)
        if (f->value[i] <= 0x20 || f->value[i] >= 0x7f)
            return false;
    return true;
}

int wp_hop_request_id(struct gm_hlist *h, uint64_t a, uint64_t b, char *out)
{
    const struct gm_hfield *found = NULL;
    size_t n = 0;

    for (size_t i = 0; i < h->n; i++) {
        if (gm_str_ieq(h->v[i].name, "x-request-id")) {
            found = &h->v[i];
            n++;
        }
    }
    if (n == 1 && id_ok(found)) {
        memcpy(out, found->value, found->value_len);
        out[found->value_len] = '\0';
        return 0;
    }
    wp_hop_uuid4(a, b, out);
    return gm_hlist_set(h, "x-request-id", out);
}

/* The value of the first for= parameter, unquoted, into buf. */
static int for_value(const char *v, size_t len, char *buf, size_t buf_len)
{
    for (size_t i = 0; i + 4 <= len; i++) {
        if (strncasecmp(v + i, "for=", 4) != 0 ||
            (i > 0 && v[i - 1] != ' ' && v[i - 1] != ';' && v[i - 1] != ',' && v[i - 1] != '\t'))
            continue;
        const char *p = v + i + 4, *end = v + len;
        size_t n = 0;
        bool quoted = p < end && *p == '"';
        p += quoted;
        while (p < end && n + 1 < buf_len) {
            if (quoted ? *p == '"' : (*p == ';' || *p == ',' || *p == ' '))
                break;
            buf[n++] = *p++;
        }
        if (quoted && (p == end || *p != '"'))
            return -EINVAL;
        buf[n] = '\0';
        return n ? 0 : -EINVAL;
    }
    return -EINVAL;
}

int wp_hop_forwarded_for(const char *v, size_t len, char *out, size_t out_len)
{
    char buf[128], *host = buf, *end;
    struct gm_ip ip;

    if (for_value(v, len, buf, sizeof(buf)) < 0)
        return -EINVAL;
    if (buf[0] == '[') {
        host = buf + 1;
        end = strchr(host, ']');
        if (end == NULL)
            return -EINVAL;
        *end = '\0';
    } else if ((end = strchr(buf, ':')) != NULL && strchr(end + 1, ':') == NULL) {
        *end = '\0'; /* IPv4 with a port */
    }
    if (gm_ip_parse(host, &ip) < 0 || strlen(host) >= out_len)
        return -EINVAL;
    snprintf(out, out_len, "%s", host);
    return 0;
}
