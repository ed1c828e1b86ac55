/* The node's identity: the shared identity runtime (common/identity_rt.c: local signer,
 * certificate cache refreshed at half-life on the control loop, TLS contexts) configured from
 * the ztunnel's settings. Workers take certificates through the runtime's mutex; the handshake
 * then uses its own reference. */
#include <errno.h>

#include "gammamesh/identity_rt.h"
#include "identity.h"
#include "proxy.h"

struct zt_identity {
    struct gm_identity_rt *rt;
};

int zt_identity_start(struct zt *zt)
{
    const struct gm_common_settings *cs = &zt->set.common;
    struct gm_identity_rt_opts o = {
        .ca_cert = cs->ca_cert,
        .ca_key = cs->ca_key,
        .trust_domain = cs->trust_domain,
        .lifetime_s = (int64_t)(zt->set.cert_lifetime_ms / 1000),
    };
    struct zt_identity *id = gm_xcalloc(1, sizeof(*id));
    int rc = gm_identity_rt_start(gm_daemon_loop(zt->daemon), &o, &id->rt);

    if (rc < 0) {
        free(id);
        return rc;
    }
    zt->identity = id;
    return 0;
}

int zt_identity_cert(struct zt *zt, const char *spiffe_id, struct gm_cert **out)
{
    return gm_identity_rt_cert(zt->identity->rt, spiffe_id, out);
}

SSL_CTX *zt_identity_ctx(struct zt *zt, bool server)
{
    return gm_identity_rt_ctx(zt->identity->rt, server);
}

json_t *zt_identity_dump(struct zt *zt)
{
    return zt->identity ? gm_identity_rt_dump(zt->identity->rt) : json_null();
}

void zt_identity_stop(struct zt *zt)
{
    if (zt->identity)
        gm_identity_rt_stop(zt->identity->rt);
}
