/* Who this waypoint is: the SPIFFE identity it presents, from its settings and its Pod. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "waypoint.h"

const char *wp_self_namespace(const struct wp_settings *set)
{
    return set->pod_namespace && *set->pod_namespace ? set->pod_namespace : "default";
}

const struct gm_workload *wp_self_pod(const struct wp_settings *set, const struct gm_snapshot *s)
{
    if (s == NULL || set->pod_name == NULL || *set->pod_name == '\0')
        return NULL;
    return gm_snapshot_workload(s, wp_self_namespace(set), set->pod_name);
}

/* The service account: the setting, else the Pod's, else its gateway-name label. NULL when the
 * Pod was named but is not in the snapshot yet. */
static const char *service_account(const struct wp_settings *set, const struct gm_snapshot *s,
                                   const char *ns, char *why, size_t why_len)
{
    const struct gm_workload *w;
    const char *gw;

    if (set->service_account && *set->service_account)
        return set->service_account;
    if (set->pod_name == NULL || *set->pod_name == '\0')
        return "default";
    w = wp_self_pod(set, s);
    if (w == NULL) {
        snprintf(why, why_len, "pod %s/%s not in the configuration yet", ns, set->pod_name);
        return NULL;
    }
    /* The decoder says "default" for a Pod without serviceAccountName: a waypoint Pod then
     * runs as its Gateway (DESIGN §2). */
    gw = gm_kvs_get(&w->obj->meta.labels, GM_LABEL_GATEWAY_NAME);
    if (gw && *gw && strcmp(w->service_account, "default") == 0)
        return gw;
    return w->service_account;
}

int wp_self_identity(const struct wp_settings *set, const struct gm_snapshot *s, char *out,
                     size_t len, char *why, size_t why_len)
{
    const char *ns = wp_self_namespace(set);
    const char *td = set->common.trust_domain ? set->common.trust_domain : "cluster.local";
    const char *sa = service_account(set, s, ns, why, why_len);
    int n;

    if (sa == NULL) {
        *out = '\0';
        return -ENOENT;
    }
    n = snprintf(out, len, "spiffe://%s/ns/%s/sa/%s", td, ns, sa);
    if (n < 0 || (size_t)n >= len) {
        snprintf(why, why_len, "identity too long");
        *out = '\0';
        return -ENAMETOOLONG;
    }
    return 0;
}
