/* SPIFFE IDs of the form spiffe://td/ns/NS/sa/SA: a strict parser and a formatter. */
#include "gammamesh/spiffe.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define SCHEME "spiffe://"

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/*
 * Dot-separated labels, each non-empty, of characters for which ok() holds; when edges is set,
 * every label must also start and end with [a-z0-9]. Shared by the trust domain (SPIFFE set) and
 * the service account (DNS-1123 subdomain).
 */
static bool labels_valid(const char *s, size_t len, size_t max, bool (*ok)(char), bool edges)
{
    size_t start = 0;

    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.') {
            if (!ok(s[i]))
                return false;
            continue;
        }
        if (i == start)
            return false; /* empty label: leading, trailing or doubled dot */
        if (edges && (!is_lower_alnum(s[start]) || !is_lower_alnum(s[i - 1])))
            return false;
        start = i + 1;
    }
    return true;
}

static bool td_char(char c)
{
    return is_lower_alnum(c) || c == '-' || c == '_';
}

static bool dns_char(char c)
{
    return is_lower_alnum(c) || c == '-';
}

bool gm_spiffe_td_valid(const char *td, size_t len)
{
    return labels_valid(td, len, GM_SPIFFE_TD_MAX, td_char, false);
}

/* A DNS-1123 label: [a-z0-9-], alphanumeric at both ends. */
static bool ns_valid(const char *s, size_t len)
{
    if (len == 0 || len > GM_SPIFFE_NS_MAX)
        return false;
    if (memchr(s, '.', len) != NULL)
        return false;
    return labels_valid(s, len, GM_SPIFFE_NS_MAX, dns_char, true);
}

static bool sa_valid(const char *s, size_t len)
{
    return labels_valid(s, len, GM_SPIFFE_SA_MAX, dns_char, true);
}

/* Length of the segment at s[0..len) up to the next '/' (or len). */
static size_t segment(const char *s, size_t len)
{
    const char *slash = memchr(s, '/', len);
    return slash ? (size_t)(slash - s) : len;
}

/* Consume the literal lit at *p (bounded by end); true when it was there. */
static bool eat(const char **p, const char *end, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
        return false;
    *p += n;
    return true;
}

int gm_spiffe_parse(const char *s, size_t len, struct gm_spiffe_id *out)
{
    memset(out, 0, sizeof(*out));
    if (s == NULL)
        return -EINVAL;

    const char *p = s, *end = s + len;
    size_t td_len, ns_len, sa_len;
    const char *td, *ns, *sa;

    if (s == NULL || !eat(&p, end, SCHEME))
        return -EINVAL;
    td = p;
    td_len = segment(p, (size_t)(end - p));
    p += td_len;
    if (!gm_spiffe_td_valid(td, td_len) || !eat(&p, end, "/ns/"))
        return -EINVAL;
    ns = p;
    ns_len = segment(p, (size_t)(end - p));
    p += ns_len;
    if (!ns_valid(ns, ns_len) || !eat(&p, end, "/sa/"))
        return -EINVAL;
    sa = p;
    sa_len = (size_t)(end - p);
    if (!sa_valid(sa, sa_len)) /* '/' is not a DNS character: no extra segment */
        return -EINVAL;
    memcpy(out->trust_domain, td, td_len);
    memcpy(out->ns, ns, ns_len);
    memcpy(out->sa, sa, sa_len);
    return 0;
}

int gm_spiffe_init(struct gm_spiffe_id *out, const char *trust_domain, const char *ns,
                   const char *sa)
{
    size_t td_len = strlen(trust_domain), ns_len = strlen(ns), sa_len = strlen(sa);

    memset(out, 0, sizeof(*out));
    if (!gm_spiffe_td_valid(trust_domain, td_len) || !ns_valid(ns, ns_len) || !sa_valid(sa, sa_len))
        return -EINVAL;
    memcpy(out->trust_domain, trust_domain, td_len);
    memcpy(out->ns, ns, ns_len);
    memcpy(out->sa, sa, sa_len);
    return 0;
}

int gm_spiffe_format(const struct gm_spiffe_id *id, char *buf, size_t len)
{
    int n = snprintf(buf, len, SCHEME "%s/ns/%s/sa/%s", id->trust_domain, id->ns, id->sa);

    if (n < 0 || (size_t)n >= len) {
        if (len > 0)
            buf[0] = '\0';
        return -ENOSPC;
    }
    return 0;
}

bool gm_spiffe_equal(const struct gm_spiffe_id *a, const struct gm_spiffe_id *b)
{
    return strcmp(a->trust_domain, b->trust_domain) == 0 && strcmp(a->ns, b->ns) == 0 &&
           strcmp(a->sa, b->sa) == 0;
}
