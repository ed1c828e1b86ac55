/* L4 AuthorizationPolicy evaluation at the destination workload (common/authz.c decides). */
#include "authz.h"

#include "gammamesh/authz.h"

int zt_authz_check(const struct gm_workload *dst, const struct zt_authz_conn *c, char *why,
                   size_t why_len)
{
    struct gm_authz_request r = {
        .src_identity = c->src_identity, .src_ip = c->src_ip, .dst_port = c->dst_port};

    return gm_authz_evaluate(dst->policies, dst->n_policies, &r, why, why_len);
}
