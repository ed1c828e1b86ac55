/*
 * identity_rt.h: the identity runtime both daemons run (DESIGN §7): a local signer (CA files, or
 * an in-memory CA for development), the per-identity certificate cache refreshed at half life by
 * a timer on the control loop, and the shared TLS contexts (client and server) trusting the
 * signer's roots; the CA files are reloaded when they change (gm_identity_rt_check_ca()).
 *
 *     struct gm_identity_rt *rt;
 *     gm_identity_rt_start(gm_daemon_loop(d), &(struct gm_identity_rt_opts){…}, &rt);
 *     … workers: SSL *ssl = gm_identity_rt_client_ssl(rt, my_id, peer_id); …
 *     gm_identity_rt_stop(rt);          (control loop, in the daemon's stop callback)
 *     … after gm_daemon_run() returned and the workers were joined …
 *     gm_identity_rt_free(rt);
 *
 * Threads: start, stop, free and the timer belong to the control loop. The certificate
 * accessors and the SSL builders are thread-safe (the cache sits behind a mutex; a handshake
 * keeps its own certificate reference, so a refresh never pulls one out from under it). The
 * contexts are shared read-only by every worker.
 */
#ifndef GAMMAMESH_IDENTITY_RT_H
#define GAMMAMESH_IDENTITY_RT_H

#include <jansson.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "gammamesh/identity.h"

struct gm_identity_rt;

/* What the runtime needs; strings are copied. */
struct gm_identity_rt_opts {
    const char *ca_cert;      /* CA certificate file (PEM); NULL (with ca_key) = in-memory CA */
    const char *ca_key;       /* CA key file (PEM) */
    const char *trust_domain; /* the only trust domain certificates are issued for */
    int64_t lifetime_s;       /* of minted leaves; 0 = GM_CERT_LIFETIME_DEFAULT */
    uint64_t ca_check_ms;     /* how often the CA files are compared; 0 = the default */
    /* Optional, on the control loop after a CA reload: the daemon retires its tunnels (GOAWAY;
     * open streams finish) so new connections are authenticated under the new bundle. */
    void (*on_ca_reload)(void *arg);
    void *on_ca_reload_arg;
};

#define GM_CA_CHECK_MS_DEFAULT 5000

/*
 * Loads the CA (or makes an in-memory one, with a warning, when ca_cert or ca_key is NULL),
 * builds the certificate cache and both TLS contexts, and arms the refresh timer on loop.
 * Returns 0 and *out, or a negative errno (logged: an unreadable CA, a bad trust domain).
 */
int gm_identity_rt_start(uv_loop_t *loop, const struct gm_identity_rt_opts *opts,
                         struct gm_identity_rt **out);

/* Closes the refresh timer (control loop). Idempotent; NULL is fine. */
void gm_identity_rt_stop(struct gm_identity_rt *rt);

/* Frees everything once the loop no longer runs the timer (after gm_identity_rt_stop() and the
 * loop's close callbacks) and no worker uses the runtime. SSLs already built keep their own
 * references to the contexts. NULL is fine. */
void gm_identity_rt_free(struct gm_identity_rt *rt);

/* A reference to a valid certificate for spiffe_id in *out (caller unrefs). 0, or the
 * gm_cert_cache_get() error (logged as a warning). Thread-safe. */
int gm_identity_rt_cert(struct gm_identity_rt *rt, const char *spiffe_id, struct gm_cert **out);

/*
 * CA rotation without a restart: compares the CA files with what was loaded (a SHA-256 of their
 * contents) and, when they changed and load (the key matches, the signing CA chains to a root
 * of its bundle), swaps in the new signer, an empty certificate cache and TLS contexts trusting
 * the new bundle's roots. Open connections keep their certificates and contexts; new ones get
 * leaves of the new CA, minted on first use. Contents that do not load are logged once and the
 * loaded CA stays in use. Runs every ca_check_ms on the control loop, and on SIGHUP through the
 * daemons. 1 when reloaded, 0 when unchanged (or an in-memory CA), else a negative errno.
 * Control loop only.
 */
int gm_identity_rt_check_ca(struct gm_identity_rt *rt);

/* A client SSL presenting src_identity and requiring the peer to prove dst_identity; NULL on
 * failure (no certificate, OpenSSL error). The caller owns the result. Thread-safe. */
SSL *gm_identity_rt_client_ssl(struct gm_identity_rt *rt, const char *src_identity,
                               const char *dst_identity);

/* A server SSL presenting identity and requiring a peer in trust domain td; NULL on failure.
 * The caller owns the result. Thread-safe. */
SSL *gm_identity_rt_server_ssl(struct gm_identity_rt *rt, const char *identity, const char *td);

/* {"ca": "files" | "in-memory (development)", "bundle": gm_signer_describe(), "certificates":
 * [...], and for files "reloads", "loaded_at", "reload_error" (the last failed reload, until one
 * succeeds)} for /config_dump (new reference; never key material). json null for a NULL
 * runtime. Control loop (the cache is read under the lock). */
json_t *gm_identity_rt_dump(struct gm_identity_rt *rt);

#endif
