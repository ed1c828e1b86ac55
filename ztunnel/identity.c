/* The node's identity: the shared identity runtime (common/identity_rt.c: local signer reloaded
 * when its files change, certificate cache refreshed at half-life on the control loop, TLS
 * contexts) configured from the ztunnel's settings. Workers build SSLs through the runtime's
 * mutex; the handshake then uses its own references. */
#include <errno.h>

#include "gammamesh/identity_rt.h"
#include "identity.h"
#include "proxy.h"
#include "ztunnel.h"

struct zt_identity {
    struct gm_identity_rt *rt;
};

static void on_ca_reload(void *arg)
{
    struct zt *zt = arg;

    for (unsigned i = 0; zt->workers_started && i < zt->workers.n; i++)
        gm_workers_post(&zt->workers.v[i], zt_proxy_retire_tunnels, NULL);
}

int zt_identity_start(struct zt *zt)
{
    const struct gm_common_settings *cs = &zt->set.common;
    struct gm_identity_rt_opts o = {
        .ca_cert = cs->ca_cert,
        .ca_key = cs->ca_key,
        .trust_domain = cs->trust_domain,
        .lifetime_s = (int64_t)(zt->set.cert_lifetime_ms / 1000),
        .on_ca_reload = on_ca_reload,
        .on_ca_reload_arg = zt,
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

SSL *zt_identity_client_ssl(struct zt *zt, const char *src_identity, const char *dst_identity)
{
    return gm_identity_rt_client_ssl(zt->identity->rt, src_identity, dst_identity);
}

SSL *zt_identity_server_ssl(struct zt *zt, const char *identity, const char *td)
{
    return gm_identity_rt_server_ssl(zt->identity->rt, identity, td);
}

void zt_identity_reload(struct zt *zt)
{
    if (zt->identity)
        (void)gm_identity_rt_check_ca(zt->identity->rt);
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
