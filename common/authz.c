/* AuthorizationPolicy evaluation (authz.h). */
#include "gammamesh/authz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SPIFFE_PREFIX "spiffe://"

/* A match can be unknowable where it is evaluated (an HTTP field at L4, a JWT claim). */
enum tri { NO = 0, YES, UNKNOWN };

/* Istio string match: "*" any, "*suffix", "prefix*", else exact. */
static bool str_match(const char *pattern, const char *value, size_t vl, bool nocase)
{
    size_t pl = strlen(pattern);
    int (*ncmp)(const char *, const char *, size_t) = nocase ? strncasecmp : strncmp;

    if (strcmp(pattern, "*") == 0)
        return true;
    if (pl > 0 && pattern[0] == '*')
        return vl >= pl - 1 && ncmp(value + vl - (pl - 1), pattern + 1, pl - 1) == 0;
    if (pl > 0 && pattern[pl - 1] == '*')
        return vl >= pl - 1 && ncmp(value, pattern, pl - 1) == 0;
    return pl == vl && ncmp(pattern, value, vl) == 0;
}

static bool any_str(const struct gm_strs *v, const char *value)
{
    for (size_t i = 0; value && i < v->n; i++)
        if (str_match(v->v[i], value, strlen(value), false))
            return true;
    return false;
}

static bool any_cidr(const struct gm_strs *v, const struct gm_ip *ip)
{
    for (size_t i = 0; i < v->n; i++)
        if (gm_ip_in_cidr(ip, v->v[i]) == 1)
            return true;
    return false;
}

static bool any_port(const struct gm_strs *v, int port)
{
    for (size_t i = 0; i < v->n; i++)
        if (atoi(v->v[i]) == port)
            return true;
    return false;
}

/* Hosts match case-insensitively, with or without the Host header's port. */
static bool any_host(const struct gm_strs *v, const char *host)
{
    size_t hl = host ? strlen(host) : 0;
    const char *colon = host ? strrchr(host, ':') : NULL;
    size_t bare = colon && !strchr(colon, ']') ? (size_t)(colon - host) : hl;

    for (size_t i = 0; host && i < v->n; i++)
        if (str_match(v->v[i], host, hl, true) || str_match(v->v[i], host, bare, true))
            return true;
    return false;
}

/* The principal form Istio compares: the SPIFFE ID without its scheme. */
static const char *principal_of(const char *identity)
{
    size_t n = strlen(SPIFFE_PREFIX);

    if (identity == NULL)
        return NULL;
    return strncmp(identity, SPIFFE_PREFIX, n) == 0 ? identity + n : identity;
}

/* The namespace of a SPIFFE ID (".../ns/<ns>/sa/..."), copied into buf; NULL when absent. */
static const char *namespace_of(const char *identity, char *buf, size_t len)
{
    const char *p = identity ? strstr(identity, "/ns/") : NULL;

    if (p == NULL)
        return NULL;
    p += 4;
    const char *end = strstr(p, "/sa/");
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n == 0 || n >= len)
        return NULL;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return buf;
}

/* Positive lists must contain the value when populated; negative lists must not. */
static bool list_ok(const struct gm_strs *pos, const struct gm_strs *neg, const char *value)
{
    if (pos->n && !any_str(pos, value))
        return false;
    return !(neg->n && any_str(neg, value));
}

static enum tri both(enum tri a, enum tri b)
{
    if (a == NO || b == NO)
        return NO;
    return a == UNKNOWN || b == UNKNOWN ? UNKNOWN : YES;
}

static bool l7(const struct gm_authz_request *r)
{
    return r->method != NULL;
}

static enum tri source_matches(const struct gm_authz_source *s, const struct gm_authz_request *r)
{
    char nsbuf[256];
    const char *principal = principal_of(r->src_identity);
    const char *ns = namespace_of(r->src_identity, nsbuf, sizeof(nsbuf));
    enum tri m = YES;

    if (!list_ok(&s->principals, &s->not_principals, principal))
        return NO;
    if (!list_ok(&s->namespaces, &s->not_namespaces, ns))
        return NO;
    if (s->ip_blocks.n && !any_cidr(&s->ip_blocks, &r->src_ip))
        return NO;
    if (s->not_ip_blocks.n && any_cidr(&s->not_ip_blocks, &r->src_ip))
        return NO;
    /* remote IPs: the client's address is the remote one here (no proxies before the mesh) */
    if (s->remote_ip_blocks.n || s->not_remote_ip_blocks.n) {
        if (!l7(r))
            m = UNKNOWN;
        else if ((s->remote_ip_blocks.n && !any_cidr(&s->remote_ip_blocks, &r->src_ip)) ||
                 (s->not_remote_ip_blocks.n && any_cidr(&s->not_remote_ip_blocks, &r->src_ip)))
            return NO;
    }
    /* request principals come from JWTs, which nothing here validates: a request has none */
    if (s->request_principals.n)
        return l7(r) ? NO : UNKNOWN;
    if (s->not_request_principals.n && !l7(r))
        m = UNKNOWN;
    return m;
}

static enum tri operation_matches(const struct gm_authz_operation *op,
                                  const struct gm_authz_request *r)
{
    if (op->ports.n && !any_port(&op->ports, r->dst_port))
        return NO;
    if (op->not_ports.n && any_port(&op->not_ports, r->dst_port))
        return NO;
    bool http = op->hosts.n || op->not_hosts.n || op->methods.n || op->not_methods.n ||
                op->paths.n || op->not_paths.n;
    if (!http)
        return YES;
    if (!l7(r))
        return UNKNOWN;
    if ((op->hosts.n && !any_host(&op->hosts, r->host)) ||
        (op->not_hosts.n && any_host(&op->not_hosts, r->host)))
        return NO;
    if ((op->methods.n && !any_str(&op->methods, r->method)) ||
        (op->not_methods.n && any_str(&op->not_methods, r->method)))
        return NO;
    bool in_paths = false, in_not = false;
    for (size_t i = 0; i < op->paths.n && !in_paths; i++)
        in_paths = str_match(op->paths.v[i], r->path, r->path_len, false);
    for (size_t i = 0; i < op->not_paths.n && !in_not; i++)
        in_not = str_match(op->not_paths.v[i], r->path, r->path_len, false);
    return (op->paths.n && !in_paths) || in_not ? NO : YES;
}

/* The value a condition key names, into buf; UNKNOWN when it cannot be known here. */
static enum tri condition_value(const char *key, const struct gm_authz_request *r, char *buf,
                                size_t len, const char **value)
{
    *value = NULL;
    if (strncmp(key, "request.headers[", 16) == 0 && key[strlen(key) - 1] == ']') {
        if (!l7(r) || r->header == NULL)
            return UNKNOWN;
        snprintf(buf, len, "%.*s", (int)(strlen(key) - 17), key + 16);
        *value = r->header(r->ctx, buf);
        return YES;
    }
    if (strcmp(key, "source.ip") == 0 || strcmp(key, "remote.ip") == 0) {
        *value = r->src_ip.family ? gm_ip_format(&r->src_ip, buf, len) : NULL;
        return YES;
    }
    if (strcmp(key, "source.namespace") == 0) {
        *value = namespace_of(r->src_identity, buf, len);
        return YES;
    }
    if (strcmp(key, "source.principal") == 0) {
        *value = principal_of(r->src_identity);
        return YES;
    }
    if (strcmp(key, "destination.port") == 0) {
        snprintf(buf, len, "%d", r->dst_port);
        *value = buf;
        return YES;
    }
    return UNKNOWN; /* request.auth.*, destination.ip, connection.sni, experimental keys */
}

static enum tri condition_matches(const struct gm_authz_condition *c,
                                  const struct gm_authz_request *r)
{
    char buf[300];
    const char *v;
    enum tri known = condition_value(c->key, r, buf, sizeof(buf), &v);

    if (known == UNKNOWN)
        return UNKNOWN;
    bool ip_key = strcmp(c->key, "source.ip") == 0 || strcmp(c->key, "remote.ip") == 0;
    bool in = false, in_not = false;
    for (size_t i = 0; v && i < c->values.n && !in; i++)
        in = ip_key ? gm_ip_in_cidr(&r->src_ip, c->values.v[i]) == 1
                    : str_match(c->values.v[i], v, strlen(v), false);
    for (size_t i = 0; v && i < c->not_values.n && !in_not; i++)
        in_not = ip_key ? gm_ip_in_cidr(&r->src_ip, c->not_values.v[i]) == 1
                        : str_match(c->not_values.v[i], v, strlen(v), false);
    return (c->values.n && !in) || in_not ? NO : YES;
}

static enum tri rule_matches(const struct gm_authz_rule *r, const struct gm_authz_request *q)
{
    enum tri m = YES;

    if (r->n_from) {
        enum tri any = NO;
        for (size_t i = 0; i < r->n_from && any != YES; i++) {
            enum tri t = source_matches(&r->from[i], q);
            any = t == YES ? YES : (t == UNKNOWN ? UNKNOWN : any);
        }
        m = both(m, any);
    }
    if (r->n_to && m != NO) {
        enum tri any = NO;
        for (size_t i = 0; i < r->n_to && any != YES; i++) {
            enum tri t = operation_matches(&r->to[i], q);
            any = t == YES ? YES : (t == UNKNOWN ? UNKNOWN : any);
        }
        m = both(m, any);
    }
    for (size_t i = 0; i < r->n_when && m != NO; i++)
        m = both(m, condition_matches(&r->when[i], q));
    return m;
}

/* Does the policy match? An unknowable rule counts against the request: a DENY matches, an
 * ALLOW does not. */
static bool policy_matches(const struct gm_authz *p, const struct gm_authz_request *r)
{
    for (size_t i = 0; i < p->n_rules; i++) {
        enum tri t = rule_matches(&p->rules[i], r);
        if (t == YES || (t == UNKNOWN && p->action == GM_AUTHZ_DENY))
            return true;
    }
    return false;
}

int gm_authz_evaluate(const struct gm_object *const *policies, size_t n,
                      const struct gm_authz_request *r, char *why, size_t why_len)
{
    bool have_allow = false;

    for (size_t i = 0; i < n; i++) {
        const struct gm_object *o = policies[i];
        if (o->authz.action == GM_AUTHZ_DENY && policy_matches(&o->authz, r)) {
            if (why)
                snprintf(why, why_len, "explicitly denied by %s/%s", o->meta.namespace,
                         o->meta.name);
            return -EPERM;
        }
        have_allow |= o->authz.action == GM_AUTHZ_ALLOW;
    }
    if (!have_allow) {
        if (why)
            snprintf(why, why_len, "%s", n ? "no allow policy" : "no policy");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        const struct gm_object *o = policies[i];
        if (o->authz.action == GM_AUTHZ_ALLOW && policy_matches(&o->authz, r)) {
            if (why)
                snprintf(why, why_len, "allowed by %s/%s", o->meta.namespace, o->meta.name);
            return 0;
        }
    }
    if (why)
        snprintf(why, why_len, "allow policies exist, but none allowed");
    return -EPERM;
}
