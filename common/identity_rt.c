/* The identity runtime shared by both daemons: signer, mutex-protected certificate cache with its
 * refresh timer, and the TLS contexts. See identity_rt.h. */
#include "gammamesh/identity_rt.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "gammamesh/log.h"
#include "gammamesh/tls.h"
#include "gammamesh/util.h"

#define TICK_MAX_MS 60000 /* re-check the cache at least this often */

struct gm_identity_rt {
    struct gm_signer *signer;
    struct gm_cert_cache *cache;
    pthread_mutex_t mu; /* guards cache */
    SSL_CTX *client, *server;
    uv_timer_t tick;
    bool tick_open;
    bool self_signed;
};

static int make_ctxs(struct gm_identity_rt *rt)
{
    size_t len = 0;
    char *roots = gm_identity_roots_pem(gm_signer_provider(rt->signer), &len);
    int rc = -EINVAL;

    rt->client = gm_tls_ctx_new(GM_TLS_CLIENT);
    rt->server = gm_tls_ctx_new(GM_TLS_SERVER);
    if (roots && rt->client && rt->server && gm_tls_ctx_set_roots(rt->client, roots, len) == 0 &&
        gm_tls_ctx_set_roots(rt->server, roots, len) == 0)
        rc = 0;
    free(roots);
    return rc;
}

static void on_tick(uv_timer_t *t)
{
    struct gm_identity_rt *rt = t->data;

    pthread_mutex_lock(&rt->mu);
    int64_t next = gm_cert_cache_tick(rt->cache, (int64_t)time(NULL));
    pthread_mutex_unlock(&rt->mu);
    int64_t now = (int64_t)time(NULL);
    uint64_t wait = next == INT64_MAX || next <= now ? TICK_MAX_MS : (uint64_t)(next - now) * 1000;
    uv_timer_start(t, on_tick, wait > TICK_MAX_MS ? TICK_MAX_MS : wait, 0);
}

static int load_signer(struct gm_identity_rt *rt, const struct gm_identity_rt_opts *o)
{
    char err[256] = "";
    int rc;

    if (o->ca_cert && o->ca_key) {
        rc = gm_signer_new_from_files(o->ca_cert, o->ca_key, o->trust_domain, &rt->signer, err,
                                      sizeof(err));
    } else {
        GM_LOG_WARN("identity",
                    "no --ca-cert/--ca-key: using an in-memory CA (development only; "
                    "no other node will trust it)",
                    "");
        rc = gm_signer_new_self_signed(o->trust_domain, &rt->signer);
        rt->self_signed = true;
        if (rc < 0)
            snprintf(err, sizeof(err), "bad trust domain");
    }
    if (rc < 0)
        GM_LOG_ERROR("identity", "cannot load the CA", "error=%s", err);
    return rc;
}

int gm_identity_rt_start(uv_loop_t *loop, const struct gm_identity_rt_opts *opts,
                         struct gm_identity_rt **out)
{
    struct gm_identity_rt *rt = gm_xcalloc(1, sizeof(*rt));
    int rc;

    *out = NULL;
    pthread_mutex_init(&rt->mu, NULL);
    if ((rc = load_signer(rt, opts)) < 0)
        goto fail;
    struct gm_cert_cache_opts co = {.lifetime_s = opts->lifetime_s};
    rt->cache = gm_cert_cache_new(gm_signer_provider(rt->signer), &co);
    if ((rc = make_ctxs(rt)) < 0) {
        GM_LOG_ERROR("identity", "cannot build TLS contexts", "");
        goto fail;
    }
    uv_timer_init(loop, &rt->tick);
    rt->tick.data = rt;
    rt->tick_open = true;
    uv_timer_start(&rt->tick, on_tick, 1000, 0);
    *out = rt;
    return 0;
fail:
    gm_identity_rt_free(rt);
    return rc;
}

void gm_identity_rt_stop(struct gm_identity_rt *rt)
{
    if (rt == NULL || !rt->tick_open)
        return;
    rt->tick_open = false;
    uv_close((uv_handle_t *)&rt->tick, NULL);
}

void gm_identity_rt_free(struct gm_identity_rt *rt)
{
    if (rt == NULL)
        return;
    gm_cert_cache_free(rt->cache);
    /* The signer owns its provider: freeing the provider frees the signer. */
    if (rt->signer)
        gm_identity_free(gm_signer_provider(rt->signer));
    SSL_CTX_free(rt->client);
    SSL_CTX_free(rt->server);
    pthread_mutex_destroy(&rt->mu);
    free(rt);
}

int gm_identity_rt_cert(struct gm_identity_rt *rt, const char *spiffe_id, struct gm_cert **out)
{
    pthread_mutex_lock(&rt->mu);
    int rc = gm_cert_cache_get(rt->cache, spiffe_id, out);
    pthread_mutex_unlock(&rt->mu);
    if (rc < 0)
        GM_LOG_WARN("identity", "no certificate", "identity=%s error=%s", spiffe_id, strerror(-rc));
    return rc;
}

SSL_CTX *gm_identity_rt_ctx(struct gm_identity_rt *rt, bool server)
{
    return server ? rt->server : rt->client;
}

/* A fresh SSL of role presenting identity, with the peer policy set; NULL on failure. */
static SSL *make_ssl(struct gm_identity_rt *rt, bool server, const char *identity,
                     const char *const *expected, size_t n, const char *td)
{
    struct gm_cert *cert = NULL;

    if (gm_identity_rt_cert(rt, identity, &cert) < 0)
        return NULL;
    SSL *ssl = SSL_new(gm_identity_rt_ctx(rt, server));
    if (ssl == NULL || gm_tls_set_identity(ssl, cert) < 0 ||
        gm_tls_set_peer_policy(ssl, expected, n, td) < 0) {
        SSL_free(ssl);
        ssl = NULL;
    }
    gm_cert_unref(cert);
    return ssl;
}

SSL *gm_identity_rt_client_ssl(struct gm_identity_rt *rt, const char *src_identity,
                               const char *dst_identity)
{
    const char *expected[] = {dst_identity};

    return make_ssl(rt, false, src_identity, expected, 1, NULL);
}

SSL *gm_identity_rt_server_ssl(struct gm_identity_rt *rt, const char *identity, const char *td)
{
    return make_ssl(rt, true, identity, NULL, 0, td);
}

json_t *gm_identity_rt_dump(struct gm_identity_rt *rt)
{
    if (rt == NULL)
        return json_null();
    pthread_mutex_lock(&rt->mu);
    json_t *states = gm_cert_cache_states(rt->cache);
    pthread_mutex_unlock(&rt->mu);
    return json_pack("{s:s, s:o}", "ca", rt->self_signed ? "in-memory (development)" : "files",
                     "certificates", states);
}
