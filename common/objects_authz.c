/* AuthorizationPolicy spec (security.istio.io/v1): selector, action and rules with Istio's
 * validation (non-empty sources and operations, IP blocks, ports, conditions with values).
 * Unknown fields are errors: a misspelt field in a security policy must never widen access. */
#include "objects_int.h"

#include <errno.h>
#include <string.h>

static const char *check_ip_block(const char *s)
{
    struct gm_ip any = {0};

    return gm_ip_in_cidr(&any, s) < 0 ? "must be an IP address or a CIDR block" : NULL;
}

static const char *check_port(const char *s)
{
    int64_t port;

    if (gm_objects_parse_int(s, &port) < 0 || port < 1 || port > 65535)
        return "must be a port number in 1..65535";
    return NULL;
}

#define SRC(key, m, chk) GM_FIELD_STRS(struct gm_authz_source, key, m, 0, chk)
#define OP(key, m, chk)  GM_FIELD_STRS(struct gm_authz_operation, key, m, 0, chk)

static const struct gm_field source_fields[] = {
    SRC("principals", principals, NULL),
    SRC("notPrincipals", not_principals, NULL),
    SRC("requestPrincipals", request_principals, NULL),
    SRC("notRequestPrincipals", not_request_principals, NULL),
    SRC("namespaces", namespaces, NULL),
    SRC("notNamespaces", not_namespaces, NULL),
    SRC("ipBlocks", ip_blocks, check_ip_block),
    SRC("notIpBlocks", not_ip_blocks, check_ip_block),
    SRC("remoteIpBlocks", remote_ip_blocks, check_ip_block),
    SRC("notRemoteIpBlocks", not_remote_ip_blocks, check_ip_block),
};

static const struct gm_field operation_fields[] = {
    OP("ports", ports, check_port), OP("notPorts", not_ports, check_port),
    OP("hosts", hosts, NULL),       OP("notHosts", not_hosts, NULL),
    OP("methods", methods, NULL),   OP("notMethods", not_methods, NULL),
    OP("paths", paths, NULL),       OP("notPaths", not_paths, NULL),
};

/* Does any gm_strs member named by the table hold an entry? */
static bool any_set(const void *base, const struct gm_field *f, size_t nf)
{
    for (size_t i = 0; i < nf; i++)
        if (((const struct gm_strs *)((const char *)base + f[i].off))->n)
            return true;
    return false;
}

static int decode_source(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    if (gm_objects_map(d, v, source_fields, GM_ARRAY_LEN(source_fields), true, base) < 0)
        return -EINVAL;
    if (!any_set(base, source_fields, GM_ARRAY_LEN(source_fields)))
        gm_objects_error(d, v, NULL, "a source must set at least one field");
    return 0;
}

static int decode_operation(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    if (gm_objects_map(d, v, operation_fields, GM_ARRAY_LEN(operation_fields), true, base) < 0)
        return -EINVAL;
    if (!any_set(base, operation_fields, GM_ARRAY_LEN(operation_fields)))
        gm_objects_error(d, v, NULL, "an operation must set at least one field");
    return 0;
}

static int decode_from(struct gm_objdec *d, const struct gm_ynode *item, void *elem)
{
    static const struct gm_field f[] = {GM_FIELD_FUNC("source", decode_source, GM_F_REQUIRED)};

    return gm_objects_map(d, item, f, GM_ARRAY_LEN(f), true, elem);
}

static int decode_to(struct gm_objdec *d, const struct gm_ynode *item, void *elem)
{
    static const struct gm_field f[] = {
        GM_FIELD_FUNC("operation", decode_operation, GM_F_REQUIRED)};

    return gm_objects_map(d, item, f, GM_ARRAY_LEN(f), true, elem);
}

static const struct gm_field condition_fields[] = {
    GM_FIELD_STR(struct gm_authz_condition, "key", key, NULL, GM_F_REQUIRED),
    GM_FIELD_STRS(struct gm_authz_condition, "values", values, 0, NULL),
    GM_FIELD_STRS(struct gm_authz_condition, "notValues", not_values, 0, NULL),
};

static int decode_when(struct gm_objdec *d, const struct gm_ynode *item, void *elem)
{
    struct gm_authz_condition *c = elem;

    if (gm_objects_map(d, item, condition_fields, GM_ARRAY_LEN(condition_fields), true, c) < 0)
        return -EINVAL;
    if (c->values.n == 0 && c->not_values.n == 0)
        gm_objects_error(d, item, NULL, "a condition must set values or notValues");
    return 0;
}

/* `from: []` and `to: []` are rejected by Istio; absent means "any". */
static int decode_list(struct gm_objdec *d, const struct gm_ynode *v, size_t size, void **out,
                       size_t *n, gm_item_fn fn)
{
    int rc = gm_objects_seq(d, v, GM_NO_LIMIT, size, out, n, fn);

    if (rc == 0 && *n == 0)
        gm_objects_error(d, v, NULL, "must not be empty");
    return rc;
}

static int decode_rule_from(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_authz_rule *r = base;

    return decode_list(d, v, sizeof(*r->from), (void **)&r->from, &r->n_from, decode_from);
}

static int decode_rule_to(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_authz_rule *r = base;

    return decode_list(d, v, sizeof(*r->to), (void **)&r->to, &r->n_to, decode_to);
}

static int decode_rule_when(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_authz_rule *r = base;

    return decode_list(d, v, sizeof(*r->when), (void **)&r->when, &r->n_when, decode_when);
}

static const struct gm_field rule_fields[] = {
    GM_FIELD_FUNC("from", decode_rule_from, 0),
    GM_FIELD_FUNC("to", decode_rule_to, 0),
    GM_FIELD_FUNC("when", decode_rule_when, 0),
};

static bool source_has_l7(const struct gm_authz_source *s)
{
    return s->request_principals.n || s->not_request_principals.n || s->remote_ip_blocks.n ||
           s->not_remote_ip_blocks.n;
}

static bool operation_has_l7(const struct gm_authz_operation *o)
{
    return o->hosts.n || o->not_hosts.n || o->methods.n || o->not_methods.n || o->paths.n ||
           o->not_paths.n;
}

static int decode_rule(struct gm_objdec *d, const struct gm_ynode *item, void *elem)
{
    struct gm_authz_rule *r = elem;

    if (gm_objects_map(d, item, rule_fields, GM_ARRAY_LEN(rule_fields), true, r) < 0)
        return -EINVAL;
    r->has_l7 = r->n_when > 0;
    for (size_t i = 0; i < r->n_from; i++)
        r->has_l7 |= source_has_l7(&r->from[i]);
    for (size_t i = 0; i < r->n_to; i++)
        r->has_l7 |= operation_has_l7(&r->to[i]);
    return 0;
}

static int decode_rules(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_authz *az = base;

    az->rules_present = true;
    return gm_objects_seq(d, v, GM_NO_LIMIT, sizeof(*az->rules), (void **)&az->rules, &az->n_rules,
                          decode_rule);
}

static int decode_selector(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    static const struct gm_field f[] = {GM_FIELD_KVS(struct gm_authz, "matchLabels", selector)};
    struct gm_authz *az = base;

    az->has_selector = true;
    return gm_objects_map(d, v, f, GM_ARRAY_LEN(f), true, az);
}

static int decode_action(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    static const char *const actions[GM_AUTHZ__MAX] = {[GM_AUTHZ_ALLOW] = "ALLOW",
                                                       [GM_AUTHZ_DENY] = "DENY",
                                                       [GM_AUTHZ_AUDIT] = "AUDIT",
                                                       [GM_AUTHZ_CUSTOM] = "CUSTOM"};
    struct gm_authz *az = base;
    char *s;

    if (gm_objects_str(d, v, &s) != 0)
        return -EINVAL;
    for (int i = 0; i < GM_AUTHZ__MAX; i++) {
        if (strcmp(s, actions[i]) == 0) {
            az->action = (enum gm_authz_action)i;
            return 0;
        }
    }
    gm_objects_error(d, v, NULL, "unsupported action \"%s\" (ALLOW, DENY, AUDIT or CUSTOM)", s);
    return -EINVAL;
}

static const struct gm_field target_fields[] = {
    GM_FIELD_STR(struct gm_policy_target, "group", group, NULL, 0),
    GM_FIELD_STR(struct gm_policy_target, "kind", kind, NULL, GM_F_REQUIRED),
    GM_FIELD_STR(struct gm_policy_target, "name", name, NULL, GM_F_REQUIRED),
    GM_FIELD_STR(struct gm_policy_target, "namespace", namespace, NULL, 0),
};

/* A target a waypoint can enforce: a Service, or a waypoint Gateway, of the policy's namespace.
 * Others (GatewayClass, ServiceEntry, another namespace) are dropped with a warning. */
static int decode_target(struct gm_objdec *d, const struct gm_ynode *item, void *elem)
{
    struct gm_policy_target *t = elem;

    if (gm_objects_map(d, item, target_fields, GM_ARRAY_LEN(target_fields), true, t) < 0)
        return -EINVAL;
    if (t->group == NULL)
        t->group = "";
    bool service = strcmp(t->kind, "Service") == 0 &&
                   (strcmp(t->group, "") == 0 || strcmp(t->group, "core") == 0);
    bool gateway =
        strcmp(t->kind, "Gateway") == 0 && strcmp(t->group, "gateway.networking.k8s.io") == 0;
    if (!service && !gateway) {
        gm_objects_warn(d, item, NULL,
                        "target %s/%s is not supported (a Service, or a waypoint Gateway): "
                        "ignored",
                        t->group, t->kind);
        t->name = NULL;
    } else if (t->namespace && d->ns && strcmp(t->namespace, d->ns) != 0) {
        gm_objects_warn(d, item, NULL, "a target in another namespace is not supported: ignored");
        t->name = NULL;
    }
    return 0;
}

/* Keep the supported targets only; a policy with targets is never a workload's (ztunnel's). */
static void keep_supported(struct gm_objdec *d, const struct gm_ynode *v, struct gm_authz *az)
{
    size_t k = 0;

    az->has_targets = true;
    for (size_t i = 0; i < az->n_targets; i++)
        if (az->targets[i].name)
            az->targets[k++] = az->targets[i];
    az->n_targets = k;
    if (k == 0)
        gm_objects_warn(d, v, NULL, "no supported target: the policy applies nowhere");
}

static int decode_target_refs(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_authz *az = base;
    int rc = gm_objects_seq(d, v, 16, sizeof(*az->targets), (void **)&az->targets, &az->n_targets,
                            decode_target);

    if (rc == 0)
        keep_supported(d, v, az);
    return rc;
}

static int decode_target_ref(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_authz *az = base;

    az->targets = GM_ARENA_NEW(d->a, struct gm_policy_target);
    az->n_targets = 1;
    if (decode_target(d, v, az->targets) < 0)
        return -EINVAL;
    keep_supported(d, v, az);
    return 0;
}

static const struct gm_field spec_fields[] = {
    GM_FIELD_FUNC("selector", decode_selector, 0),
    GM_FIELD_FUNC("action", decode_action, 0),
    GM_FIELD_FUNC("rules", decode_rules, 0),
    GM_FIELD_FUNC("targetRef", decode_target_ref, 0),
    GM_FIELD_FUNC("targetRefs", decode_target_refs, 0),
    GM_FIELD_WARN("provider"),
};

void gm_objects_authz_decode(struct gm_objdec *d, const struct gm_ynode *spec, struct gm_object *o)
{
    o->authz.action = GM_AUTHZ_ALLOW;
    gm_objects_map(d, spec, spec_fields, GM_ARRAY_LEN(spec_fields), true, &o->authz);
    if (o->authz.has_targets && o->authz.has_selector)
        gm_objects_error(d, spec, "selector", "a policy has either a selector or targetRefs");
}
