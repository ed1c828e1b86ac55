/* The node's identity provider: a local signer (CA files, or an in-memory CA for development),
 * a certificate cache refreshed at half-life on the control loop, and the shared TLS contexts.
 * Workers take certificates through a mutex; the handshake then uses its own reference. */
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "gammamesh/identity.h"
#include "gammamesh/log.h"
#include "gammamesh/tls.h"
#include "identity.h"
#include "proxy.h"

struct zt_identity {
    struct gm_signer *signer;
    struct gm_cert_cache *cache;
    pthread_mutex_t mu;
    SSL_CTX *client, *server;
    uv_timer_t tick;
    bool self_signed;
};

static int make_ctxs(struct zt_identity *id)
{
    char *roots = NULL;
    size_t len = 0;

    roots = gm_identity_roots_pem(gm_signer_provider(id->signer), &len);
    id->client = gm_tls_ctx_new(GM_TLS_CLIENT);
    id->server = gm_tls_ctx_new(GM_TLS_SERVER);
    int rc = roots && id->client && id->server &&
                     gm_tls_ctx_set_roots(id->client, roots, len) == 0 &&
                     gm_tls_ctx_set_roots(id->server, roots, len) == 0
                 ? 0
                 : -EINVAL;
    free(roots);
    return rc;
}

static void on_tick(uv_timer_t *t)
{
    struct zt_identity *id = t->data;

    pthread_mutex_lock(&id->mu);
    int64_t next = gm_cert_cache_tick(id->cache, (int64_t)time(NULL));
    pthread_mutex_unlock(&id->mu);
    int64_t now = (int64_t)time(NULL);
    uint64_t wait = next == INT64_MAX || next <= now ? 60000 : (uint64_t)(next - now) * 1000;
    uv_timer_start(t, on_tick, wait > 60000 ? 60000 : wait, 0);
}

int zt_identity_start(struct zt *zt)
{
    struct zt_identity *id = gm_xcalloc(1, sizeof(*id));
    const struct gm_common_settings *cs = &zt->set.common;
    char err[256] = "";
    int rc;

    pthread_mutex_init(&id->mu, NULL);
    if (cs->ca_cert && cs->ca_key) {
        rc = gm_signer_new_from_files(cs->ca_cert, cs->ca_key, cs->trust_domain, &id->signer, err,
                                      sizeof(err));
    } else {
        GM_LOG_WARN("identity",
                    "no --ca-cert/--ca-key: using an in-memory CA (development only; "
                    "no other node will trust it)",
                    "");
        rc = gm_signer_new_self_signed(cs->trust_domain, &id->signer);
        id->self_signed = true;
    }
    if (rc < 0) {
        GM_LOG_ERROR("identity", "cannot load the CA", "error=\"%s\"", err);
        free(id);
        return rc;
    }
    struct gm_cert_cache_opts opts = {.lifetime_s = (int64_t)(zt->set.cert_lifetime_ms / 1000)};
    id->cache = gm_cert_cache_new(gm_signer_provider(id->signer), &opts);
    if (make_ctxs(id) < 0) {
        GM_LOG_ERROR("identity", "cannot build TLS contexts", "");
        return -EINVAL;
    }
    uv_timer_init(gm_daemon_loop(zt->daemon), &id->tick);
    id->tick.data = id;
    uv_timer_start(&id->tick, on_tick, 1000, 0);
    zt->identity = id;
    return 0;
}

int zt_identity_cert(struct zt *zt, const char *spiffe_id, struct gm_cert **out)
{
    struct zt_identity *id = zt->identity;

    pthread_mutex_lock(&id->mu);
    int rc = gm_cert_cache_get(id->cache, spiffe_id, out);
    pthread_mutex_unlock(&id->mu);
    if (rc < 0)
        GM_LOG_WARN("identity", "no certificate", "identity=%s error=%s", spiffe_id, strerror(-rc));
    return rc;
}

SSL_CTX *zt_identity_ctx(struct zt *zt, bool server)
{
    return server ? zt->identity->server : zt->identity->client;
}

json_t *zt_identity_dump(struct zt *zt)
{
    struct zt_identity *id = zt->identity;

    if (id == NULL)
        return json_null();
    pthread_mutex_lock(&id->mu);
    json_t *states = gm_cert_cache_states(id->cache);
    pthread_mutex_unlock(&id->mu);
    return json_pack("{s:s, s:o}", "ca", id->self_signed ? "in-memory (development)" : "files",
                     "certificates", states);
}

void zt_identity_stop(struct zt *zt)
{
    if (zt->identity)
        uv_close((uv_handle_t *)&zt->identity->tick, NULL);
}
