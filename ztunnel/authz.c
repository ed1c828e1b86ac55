/* L4 AuthorizationPolicy evaluation. */
#include "authz.h"

#include <errno.h>
#include <stdio.h>

#define SPIFFE_PREFIX "spiffe://"

/* Istio string match: "*" any, "*suffix", "prefix*", else exact. */
static bool str_match(const char *pattern, const char *value)
{
    size_t pl = strlen(pattern), vl = strlen(value);

    if (strcmp(pattern, "*") == 0)
        return true;
    if (pl > 0 && pattern[0] == '*')
        return vl >= pl - 1 && strcmp(value + vl - (pl - 1), pattern + 1) == 0;
    if (pl > 0 && pattern[pl - 1] == '*')
        return strncmp(value, pattern, pl - 1) == 0;
    return strcmp(pattern, value) == 0;
}

static bool any_str(const struct gm_strs *v, const char *value)
{
    for (size_t i = 0; value && i < v->n; i++)
        if (str_match(v->v[i], value))
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

static bool source_matches(const struct gm_authz_source *s, const struct zt_authz_conn *c)
{
    char nsbuf[256];
    const char *principal = principal_of(c->src_identity);
    const char *ns = namespace_of(c->src_identity, nsbuf, sizeof(nsbuf));

    if (!list_ok(&s->principals, &s->not_principals, principal))
        return false;
    if (!list_ok(&s->namespaces, &s->not_namespaces, ns))
        return false;
    if (s->ip_blocks.n && !any_cidr(&s->ip_blocks, &c->src_ip))
        return false;
    return !(s->not_ip_blocks.n && any_cidr(&s->not_ip_blocks, &c->src_ip));
}

static bool operation_matches(const struct gm_authz_operation *op, const struct zt_authz_conn *c)
{
    if (op->ports.n && !any_port(&op->ports, c->dst_port))
        return false;
    return !(op->not_ports.n && any_port(&op->not_ports, c->dst_port));
}

static bool rule_matches(const struct gm_authz_rule *r, enum gm_authz_action action,
                         const struct zt_authz_conn *c)
{
    bool ok = false;

    if (r->has_l7 && action == GM_AUTHZ_ALLOW)
        return false; /* cannot be proven at L4: never allows */
    if (r->n_from) {
        for (size_t i = 0; i < r->n_from && !ok; i++)
            ok = source_matches(&r->from[i], c);
        if (!ok)
            return false;
    }
    if (r->n_to) {
        ok = false;
        for (size_t i = 0; i < r->n_to && !ok; i++)
            ok = operation_matches(&r->to[i], c);
        if (!ok)
            return false;
    }
    return true;
}

static bool policy_matches(const struct gm_authz *p, const struct zt_authz_conn *c)
{
    for (size_t i = 0; i < p->n_rules; i++)
        if (rule_matches(&p->rules[i], p->action, c))
            return true;
    return false;
}

int zt_authz_check(const struct gm_workload *dst, const struct zt_authz_conn *c, char *why,
                   size_t why_len)
{
    bool have_allow = false;

    for (size_t i = 0; i < dst->n_policies; i++) {
        const struct gm_object *o = dst->policies[i];
        if (o->authz.action == GM_AUTHZ_DENY && policy_matches(&o->authz, c)) {
            if (why)
                snprintf(why, why_len, "explicitly denied by %s/%s", o->meta.namespace,
                         o->meta.name);
            return -EPERM;
        }
        have_allow |= o->authz.action == GM_AUTHZ_ALLOW;
    }
    if (!have_allow)
        return 0;
    for (size_t i = 0; i < dst->n_policies; i++) {
        const struct gm_object *o = dst->policies[i];
        if (o->authz.action == GM_AUTHZ_ALLOW && policy_matches(&o->authz, c)) {
            if (why)
                snprintf(why, why_len, "allowed by %s/%s", o->meta.namespace, o->meta.name);
            return 0;
        }
    }
    if (why)
        snprintf(why, why_len, "allow policies exist, but none allowed");
    return -EPERM;
}
