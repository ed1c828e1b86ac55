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
    struct gm_signer *signer;    /* all four are swapped together, under mu, by a CA reload */
    struct gm_cert_cache *cache; /* guarded by mu */
    SSL_CTX *client, *server;    /* read under mu (an SSL keeps its own context reference) */
    pthread_mutex_t mu;
    uv_timer_t tick;
    uv_timer_t watch; /* CA files: reloaded when their contents change */
    bool tick_open;
    bool self_signed;
    char *ca_cert, *ca_key, *trust_domain; /* the files and what they are loaded for */
    int64_t lifetime_s;
    void (*on_ca_reload)(void *arg);
    void *on_ca_reload_arg;
    uint8_t digest[GM_CA_DIGEST_LEN]; /* of the files as loaded */
    /* for /config_dump, control loop only */
    uint64_t reloads;
    int64_t loaded_at;
    char reload_error[256];
};

static int make_ctxs(struct gm_signer *signer, SSL_CTX **client, SSL_CTX **server)
{
    size_t len = 0;
    char *roots = gm_identity_roots_pem(gm_signer_provider(signer), &len);
    int rc = -EINVAL;

    *client = gm_tls_ctx_new(GM_TLS_CLIENT);
    *server = gm_tls_ctx_new(GM_TLS_SERVER);
    if (roots && *client && *server && gm_tls_ctx_set_roots(*client, roots, len) == 0 &&
        gm_tls_ctx_set_roots(*server, roots, len) == 0)
        rc = 0;
    free(roots);
    if (rc < 0) {
        SSL_CTX_free(*client);
        SSL_CTX_free(*server);
        *client = *server = NULL;
    }
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

static struct gm_cert_cache *new_cache(struct gm_identity_rt *rt, struct gm_signer *signer)
{
    struct gm_cert_cache_opts co = {.lifetime_s = rt->lifetime_s};

    return gm_cert_cache_new(gm_signer_provider(signer), &co);
}

int gm_identity_rt_check_ca(struct gm_identity_rt *rt)
{
    uint8_t digest[GM_CA_DIGEST_LEN];
    char err[256] = "";
    struct gm_signer *signer = NULL;
    SSL_CTX *client = NULL, *server = NULL;
    int rc;

    if (rt == NULL || rt->self_signed)
        return 0;
    rc = gm_signer_load_files(rt->ca_cert, rt->ca_key, rt->trust_domain, rt->digest, digest,
                              &signer, err, sizeof(err));
    if (rc == 1) {
        rt->reload_error[0] = '\0'; /* back to what is loaded */
        return 0;
    }
    if (rc == 0 && make_ctxs(signer, &client, &server) < 0) {
        snprintf(err, sizeof(err), "cannot build TLS contexts");
        rc = -EINVAL;
    }
    if (rc < 0) {
        if (signer)
            gm_identity_free(gm_signer_provider(signer));
        /* Reported once while it stays the same: a Secret update swaps the files, and a bad
         * version stays until it is replaced. */
        if (strcmp(err, rt->reload_error) != 0)
            GM_LOG_ERROR("identity",
                         "the CA files changed but cannot be loaded; the loaded CA stays in use",
                         "error=%s", err);
        snprintf(rt->reload_error, sizeof(rt->reload_error), "%s", err);
        return rc;
    }
    struct gm_cert_cache *cache = new_cache(rt, signer);
    pthread_mutex_lock(&rt->mu);
    struct gm_signer *old_signer = rt->signer;
    struct gm_cert_cache *old_cache = rt->cache;
    SSL_CTX *old_client = rt->client, *old_server = rt->server;
    rt->signer = signer;
    rt->cache = cache;
    rt->client = client;
    rt->server = server;
    pthread_mutex_unlock(&rt->mu);
    /* Certificates and SSLs in use keep their own references: open connections are untouched,
     * new ones present leaves of the new CA and trust the new bundle's roots. */
    gm_cert_cache_free(old_cache);
    gm_identity_free(gm_signer_provider(old_signer));
    SSL_CTX_free(old_client);
    SSL_CTX_free(old_server);
    memcpy(rt->digest, digest, sizeof(digest));
    rt->reload_error[0] = '\0';
    rt->reloads++;
    rt->loaded_at = (int64_t)time(NULL);
    json_t *d = gm_signer_describe(signer), *ca = json_object_get(d, "signing_ca");
    GM_LOG_INFO("identity", "CA reloaded: new certificates come from it",
                "signing_ca=%s sha256=%s roots=%zu",
                json_string_value(json_object_get(ca, "subject")),
                json_string_value(json_object_get(ca, "sha256")),
                json_array_size(json_object_get(d, "roots")));
    json_decref(d);
    if (rt->on_ca_reload)
        rt->on_ca_reload(rt->on_ca_reload_arg);
    return 1;
}

static void on_watch(uv_timer_t *t)
{
    (void)gm_identity_rt_check_ca(t->data);
}

static int load_signer(struct gm_identity_rt *rt, const struct gm_identity_rt_opts *o)
{
    char err[256] = "";
    int rc;

    if (o->ca_cert && o->ca_key) {
        rc = gm_signer_load_files(o->ca_cert, o->ca_key, o->trust_domain, NULL, rt->digest,
                                  &rt->signer, err, sizeof(err));
        rt->ca_cert = gm_xstrdup(o->ca_cert);
        rt->ca_key = gm_xstrdup(o->ca_key);
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
    rt->trust_domain = gm_xstrdup(opts->trust_domain ? opts->trust_domain : "");
    rt->lifetime_s = opts->lifetime_s;
    rt->on_ca_reload = opts->on_ca_reload;
    rt->on_ca_reload_arg = opts->on_ca_reload_arg;
    if ((rc = load_signer(rt, opts)) < 0)
        goto fail;
    rt->cache = new_cache(rt, rt->signer);
    rt->loaded_at = (int64_t)time(NULL);
    if ((rc = make_ctxs(rt->signer, &rt->client, &rt->server)) < 0) {
        GM_LOG_ERROR("identity", "cannot build TLS contexts", "");
        goto fail;
    }
    uv_timer_init(loop, &rt->tick);
    uv_timer_init(loop, &rt->watch);
    rt->tick.data = rt;
    rt->watch.data = rt;
    rt->tick_open = true;
    uv_timer_start(&rt->tick, on_tick, 1000, 0);
    if (!rt->self_signed) {
        uint64_t ms = opts->ca_check_ms ? opts->ca_check_ms : GM_CA_CHECK_MS_DEFAULT;
        uv_timer_start(&rt->watch, on_watch, ms, ms);
    }
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
    uv_close((uv_handle_t *)&rt->watch, NULL);
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
    free(rt->ca_cert);
    free(rt->ca_key);
    free(rt->trust_domain);
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

/* A fresh SSL of role presenting identity, with the peer policy set; NULL on failure. The
 * certificate and the context are taken together, under the lock a CA reload swaps them in. */
static SSL *make_ssl(struct gm_identity_rt *rt, bool server, const char *identity,
                     const char *const *expected, size_t n, const char *td)
{
    struct gm_cert *cert = NULL;
    SSL *ssl = NULL;

    pthread_mutex_lock(&rt->mu);
    int rc = gm_cert_cache_get(rt->cache, identity, &cert);
    if (rc == 0)
        ssl = SSL_new(server ? rt->server : rt->client);
    pthread_mutex_unlock(&rt->mu);
    if (rc < 0) {
        GM_LOG_WARN("identity", "no certificate", "identity=%s error=%s", identity, strerror(-rc));
        return NULL;
    }
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
    json_t *bundle = gm_signer_describe(rt->signer);
    pthread_mutex_unlock(&rt->mu);
    json_t *o =
        json_pack("{s:s, s:o, s:o}", "ca", rt->self_signed ? "in-memory (development)" : "files",
                  "bundle", bundle, "certificates", states);
    if (!rt->self_signed) {
        char when[32];
        json_object_set_new(o, "reloads", json_integer((json_int_t)rt->reloads));
        if (gm_fmt_rfc3339(when, sizeof(when), rt->loaded_at))
            json_object_set_new(o, "loaded_at", json_string(when));
        if (rt->reload_error[0])
            json_object_set_new(o, "reload_error", json_string(rt->reload_error));
    }
    return o;
}
