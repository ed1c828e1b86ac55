/* The local signer (certificate contents, CA loading, bundles) and the per-identity cache (hit,
 * refresh at half life, backoff, expiry, asynchronous providers, states JSON). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "gammamesh/identity.h"
#include "gammamesh/identity_rt.h"
#include "gammamesh/util.h"
#include "test.h"

#define TD    "cluster.local"
#define ID_A  "spiffe://cluster.local/ns/default/sa/a"
#define ID_B  "spiffe://cluster.local/ns/default/sa/b"
#define ID_OT "spiffe://other.td/ns/default/sa/a"

/* ---- test CAs made with OpenSSL directly, independent of the signer ---- */

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
    GM_ASSERT(ext != NULL && X509_add_ext(x, ext, -1) == 1);
    X509_EXTENSION_free(ext);
}

/* A CA (or, with is_ca false, an end-entity) cert for key with subject CN=cn, signed by
 * issuer/issuer_key, or self-signed when issuer is NULL. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
                       bool is_ca)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_get_subject_name(x);

    GM_ASSERT(x != NULL);
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(random() & 0xffffff) + 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 30L * 24 * 3600);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    add_ext(x, issuer ? issuer : x, NID_basic_constraints,
            is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    if (is_ca)
        add_ext(x, issuer ? issuer : x, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash");
    GM_ASSERT(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static char *cert_pem(X509 *x)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out;
    long n;

    PEM_write_bio_X509(bio, x);
    n = BIO_get_mem_data(bio, &data);
    out = gm_xstrndup(data, (size_t)n);
    BIO_free(bio);
    return out;
}

static char *key_pem(EVP_PKEY *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out;
    long n;

    PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL);
    n = BIO_get_mem_data(bio, &data);
    out = gm_xstrndup(data, (size_t)n);
    BIO_free(bio);
    return out;
}

/* Does leaf verify (for TLS client and server use) against roots, with untrusted chain? */
static bool verifies(X509 *leaf, STACK_OF(X509) *chain, const char *roots_pem)
{
    X509_STORE *store = X509_STORE_new();
    BIO *bio = BIO_new_mem_buf(roots_pem, -1);
    X509 *r;
    bool ok = true;

    while ((r = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        X509_STORE_add_cert(store, r);
        X509_free(r);
    }
    for (int purpose = X509_PURPOSE_SSL_CLIENT; purpose <= X509_PURPOSE_SSL_SERVER; purpose++) {
        X509_STORE_CTX *ctx = X509_STORE_CTX_new();
        X509_STORE_CTX_init(ctx, store, leaf, chain);
        X509_STORE_CTX_set_purpose(ctx, purpose);
        ok = ok && X509_verify_cert(ctx) == 1;
        X509_STORE_CTX_free(ctx);
    }
    BIO_free(bio);
    X509_STORE_free(store);
    return ok;
}

static int count_certs(const char *pem)
{
    int n = 0;

    for (const char *p = pem; (p = strstr(p, "BEGIN CERTIFICATE")) != NULL; p++)
        n++;
    return n;
}

/* ---- the leaf itself ---- */

static void check_san(X509 *leaf, const char *want)
{
    int crit = -1;
    GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);

    CHECK(gens != NULL);
    CHECK_EQ_INT(crit, 1); /* critical: the subject is empty */
    CHECK_EQ_INT(sk_GENERAL_NAME_num(gens), 1);
    if (gens != NULL && sk_GENERAL_NAME_num(gens) == 1) {
        GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, 0);
        CHECK_EQ_INT(gn->type, GEN_URI);
        if (gn->type == GEN_URI)
            CHECK_EQ_STR((const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier),
                         want);
    }
    GENERAL_NAMES_free(gens);
}

static void check_leaf(const struct gm_cert *c, const char *id, int64_t lifetime)
{
    int64_t now = (int64_t)time(NULL);
    char group[64] = "";
    X509 *x = c->leaf;

    CHECK_EQ_STR(c->identity, id);
    check_san(x, id);
    CHECK_EQ_INT(X509_NAME_entry_count(X509_get_subject_name(x)), 0);
    CHECK_EQ_INT(X509_get_version(x), X509_VERSION_3);
    CHECK(EVP_PKEY_is_a(c->key, "EC"));
    EVP_PKEY_get_group_name(c->key, group, sizeof(group), NULL);
    CHECK_EQ_STR(group, "prime256v1");
    CHECK_EQ_INT(X509_check_private_key(x, c->key), 1);
    CHECK_EQ_INT(X509_check_ca(x), 0);
    CHECK(X509_get_extension_flags(x) & EXFLAG_BCONS); /* basicConstraints present, CA:FALSE */
    CHECK_EQ_INT(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
    CHECK_EQ_INT(X509_get_extended_key_usage(x), XKU_SSL_SERVER | XKU_SSL_CLIENT);
    CHECK(llabs(c->not_before - (now - GM_CERT_BACKDATE)) <= 5);
    CHECK(llabs(c->not_after - (now + lifetime)) <= 5);
    CHECK(strlen(c->serial) >= 16 && strlen(c->serial) <= 32); /* 128 random bits */
}

static int sig_nid(X509 *x)
{
    return X509_get_signature_nid(x);
}

static void test_self_signed_issue(void)
{
    struct gm_signer *s = NULL;
    struct gm_cert *a = NULL, *b = NULL, *d = NULL;
    size_t len = 0;
    char *roots;

    CHECK_EQ_INT(gm_signer_new_self_signed(TD, &s), 0);
    GM_ASSERT(s != NULL);
    roots = gm_identity_roots_pem(gm_signer_provider(s), &len);
    CHECK(roots != NULL && len == strlen(roots));
    CHECK_EQ_INT(count_certs(roots), 1);

    CHECK_EQ_INT(gm_signer_issue(s, ID_A, 0, &a), 0);
    CHECK_EQ_INT(gm_signer_issue(s, ID_A, 3600, &b), 0);
    GM_ASSERT(a != NULL && b != NULL);
    check_leaf(a, ID_A, GM_CERT_LIFETIME_DEFAULT);
    check_leaf(b, ID_A, 3600);
    CHECK(verifies(a->leaf, a->chain, roots));
    CHECK(verifies(b->leaf, b->chain, roots));
    CHECK_EQ_INT(sk_X509_num(a->chain), 0); /* the root is not sent */
    CHECK_EQ_INT(sig_nid(a->leaf), NID_ecdsa_with_SHA256);
    CHECK(strcmp(a->serial, b->serial) != 0);
    CHECK(ASN1_INTEGER_cmp(X509_get0_serialNumber(a->leaf), X509_get0_serialNumber(b->leaf)) != 0);

    /* refusals */
    CHECK_EQ_INT(gm_signer_issue(s, ID_OT, 0, &d), -EPERM);
    CHECK(d == NULL);
    CHECK_EQ_INT(gm_signer_issue(s, "spiffe://cluster.local/ns/a", 0, &d), -EINVAL);
    CHECK_EQ_INT(gm_signer_issue(s, ID_A, -1, &d), -EINVAL);
    CHECK_EQ_INT(gm_signer_issue(s, ID_A, GM_CERT_LIFETIME_MAX + 1, &d), -EINVAL);
    gm_signer_free(s);
    CHECK_EQ_INT(gm_signer_new_self_signed("Bad..td", &s), -EINVAL);
    CHECK(s == NULL); /* *out is cleared on failure */

    gm_cert_unref(a);
    gm_cert_unref(b);
    gm_cert_unref(NULL);
    free(roots);
}

/* Export a CA and load it back, here under another trust domain. */
static void test_pem_export(void)
{
    struct gm_signer *s = NULL, *again = NULL;
    struct gm_cert *c = NULL, *c2 = NULL;
    char *cp = NULL, *kp = NULL, *pem = NULL, *roots;
    size_t cl = 0, kl = 0, len = 0;
    char err[256] = "";

    GM_ASSERT(gm_signer_new_self_signed(TD, &s) == 0);
    CHECK_EQ_INT(gm_signer_ca_to_pem(s, &cp, &cl, &kp, &kl), 0);
    CHECK_EQ_INT(count_certs(cp), 1);
    CHECK(strstr(kp, "BEGIN PRIVATE KEY") != NULL);
    CHECK_EQ_INT(gm_signer_new_from_pem(cp, cl, kp, kl, "other.td", &again, err, sizeof(err)), 0);
    CHECK_EQ_STR(err, "");
    GM_ASSERT(again != NULL);
    /* the same CA under another trust domain: what the TLS tests use */
    CHECK_EQ_INT(gm_signer_issue(again, ID_OT, 0, &c), 0);
    roots = gm_identity_roots_pem(gm_signer_provider(s), NULL);
    CHECK(c != NULL && verifies(c->leaf, c->chain, roots));
    CHECK_EQ_INT(gm_signer_issue(s, ID_A, 0, &c2), 0);

    CHECK_EQ_INT(gm_cert_to_pem(c, &pem, &len), 0);
    CHECK_EQ_INT(count_certs(pem), 1);
    CHECK(strstr(pem, "PRIVATE") == NULL);
    CHECK_EQ_INT(len, strlen(pem));
    free(pem);
    CHECK_EQ_INT(gm_cert_key_to_pem(c, &pem, NULL), 0);
    CHECK(strstr(pem, "BEGIN PRIVATE KEY") != NULL);
    free(pem);

    free(roots);
    free(cp);
    free(kp);
    gm_cert_unref(c);
    gm_cert_unref(c2);
    gm_signer_free(again);
    gm_identity_free(gm_signer_provider(s)); /* the provider's free frees the signer */
    gm_signer_free(NULL);
    gm_identity_free(NULL);
}

/* An RSA CA, an intermediate chain, a bundle with two roots, and load errors. */
static void test_rsa_and_bundles(void)
{
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *ec2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    X509 *root = make_cert(rsa, "root", NULL, NULL, true);
    X509 *inter = make_cert(ec, "intermediate", root, rsa, true);
    X509 *other_root = make_cert(ec2, "other root", NULL, NULL, true);
    X509 *not_ca = make_cert(ec2, "leaf", NULL, NULL, false);
    char *root_pem = cert_pem(root), *inter_pem = cert_pem(inter);
    char *other_pem = cert_pem(other_root), *notca_pem = cert_pem(not_ca);
    char *rsa_key = key_pem(rsa), *ec_key = key_pem(ec), *ec2_key = key_pem(ec2);
    char *bundle = gm_xasprintf("%s%s", root_pem, other_pem);
    char *ichain = gm_xasprintf("%s%s", inter_pem, root_pem);
    struct gm_signer *s = NULL;
    struct gm_cert *c = NULL;
    char err[256], *roots;

    /* RSA root signing directly, with a second root trusted alongside (rotation) */
    CHECK_EQ_INT(gm_signer_new_from_pem(bundle, strlen(bundle), rsa_key, strlen(rsa_key), TD, &s,
                                        err, sizeof(err)),
                 0);
    GM_ASSERT(s != NULL);
    roots = gm_identity_roots_pem(gm_signer_provider(s), NULL);
    CHECK_EQ_INT(count_certs(roots), 2);
    CHECK_EQ_INT(gm_signer_issue(s, ID_A, 0, &c), 0);
    CHECK(c != NULL && verifies(c->leaf, c->chain, roots));
    CHECK(c != NULL && verifies(c->leaf, c->chain, root_pem));
    CHECK(c != NULL && !verifies(c->leaf, c->chain, other_pem));
    CHECK_EQ_INT(sig_nid(c->leaf), NID_sha256WithRSAEncryption);
    gm_cert_unref(c);
    free(roots);
    gm_signer_free(s);

    /* an intermediate signs; the leaf carries it as its chain */
    CHECK_EQ_INT(gm_signer_new_from_pem(ichain, strlen(ichain), ec_key, strlen(ec_key), TD, &s, err,
                                        sizeof(err)),
                 0);
    GM_ASSERT(s != NULL);
    CHECK_EQ_INT(gm_signer_issue(s, ID_B, 600, &c), 0);
    GM_ASSERT(c != NULL);
    CHECK_EQ_INT(sk_X509_num(c->chain), 1);
    CHECK(verifies(c->leaf, c->chain, root_pem));
    CHECK(!verifies(c->leaf, NULL, root_pem));
    CHECK_EQ_INT(sig_nid(c->leaf), NID_ecdsa_with_SHA256);
    gm_cert_unref(c);
    /* a leaf never outlives the CA that signs it (this one has 30 days left) */
    CHECK_EQ_INT(gm_signer_issue(s, ID_B, GM_CERT_LIFETIME_MAX, &c), 0);
    GM_ASSERT(c != NULL);
    CHECK_EQ_INT(ASN1_TIME_compare(X509_get0_notAfter(c->leaf), X509_get0_notAfter(inter)), 0);
    gm_cert_unref(c);
    gm_signer_free(s);

    /* refusals, each with a reason */
    err[0] = '\0';
    CHECK_EQ_INT(gm_signer_new_from_pem(root_pem, strlen(root_pem), ec_key, strlen(ec_key), TD, &s,
                                        err, sizeof(err)),
                 -EINVAL);
    CHECK(s == NULL && strstr(err, "does not match") != NULL);
    CHECK_EQ_INT(gm_signer_new_from_pem(notca_pem, strlen(notca_pem), ec2_key, strlen(ec2_key), TD,
                                        &s, err, sizeof(err)),
                 -EINVAL);
    CHECK(strstr(err, "not a CA") != NULL);
    CHECK_EQ_INT(gm_signer_new_from_pem(inter_pem, strlen(inter_pem), ec_key, strlen(ec_key), TD,
                                        &s, err, sizeof(err)),
                 -EINVAL);
    CHECK(strstr(err, "no self-signed root") != NULL);
    CHECK_EQ_INT(
        gm_signer_new_from_pem(root_pem, strlen(root_pem), "junk", 4, TD, &s, err, sizeof(err)),
        -EINVAL);
    CHECK(strstr(err, "private key") != NULL);
    CHECK_EQ_INT(
        gm_signer_new_from_pem("junk", 4, rsa_key, strlen(rsa_key), TD, &s, err, sizeof(err)),
        -EINVAL);
    CHECK_EQ_INT(gm_signer_new_from_pem(root_pem, strlen(root_pem), rsa_key, strlen(rsa_key),
                                        "Bad TD", &s, NULL, 0),
                 -EINVAL);

    free(bundle);
    free(ichain);
    free(root_pem);
    free(inter_pem);
    free(other_pem);
    free(notca_pem);
    free(rsa_key);
    free(ec_key);
    free(ec2_key);
    X509_free(root);
    X509_free(inter);
    X509_free(other_root);
    X509_free(not_ca);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ec2);
}

static void write_file(const char *path, const char *data)
{
    FILE *f = fopen(path, "w");

    GM_ASSERT(f != NULL);
    fputs(data, f);
    fclose(f);
}

static void test_from_files(void)
{
    char dir[] = "/tmp/gm-test-identity-XXXXXX", cpath[64], kpath[64], err[256];
    struct gm_signer *s = NULL, *loaded = NULL;
    struct gm_cert *c = NULL;
    char *cp, *kp, *roots;
    size_t cl, kl;

    GM_ASSERT(mkdtemp(dir) != NULL);
    snprintf(cpath, sizeof(cpath), "%s/ca-cert.pem", dir);
    snprintf(kpath, sizeof(kpath), "%s/ca-key.pem", dir);
    GM_ASSERT(gm_signer_new_self_signed(TD, &s) == 0);
    GM_ASSERT(gm_signer_ca_to_pem(s, &cp, &cl, &kp, &kl) == 0);
    write_file(cpath, cp);
    write_file(kpath, kp);

    CHECK_EQ_INT(gm_signer_new_from_files(cpath, kpath, TD, &loaded, err, sizeof(err)), 0);
    GM_ASSERT(loaded != NULL);
    CHECK_EQ_INT(gm_signer_issue(loaded, ID_A, 0, &c), 0);
    roots = gm_identity_roots_pem(gm_signer_provider(s), NULL);
    CHECK(c != NULL && verifies(c->leaf, c->chain, roots)); /* same CA as s */
    gm_cert_unref(c);
    gm_signer_free(loaded);
    free(roots);

    CHECK_EQ_INT(
        gm_signer_new_from_files("/nonexistent/ca.pem", kpath, TD, &loaded, err, sizeof(err)),
        -ENOENT);
    CHECK(loaded == NULL && strstr(err, "/nonexistent/ca.pem") != NULL);
    CHECK_EQ_INT(gm_signer_new_from_files(cpath, dir, TD, &loaded, err, sizeof(err)), -EINVAL);
    CHECK_EQ_INT(gm_signer_new_from_files(kpath, cpath, TD, &loaded, err, sizeof(err)), -EINVAL);

    unlink(cpath);
    unlink(kpath);
    rmdir(dir);
    free(cp);
    OPENSSL_cleanse(kp, kl);
    free(kp);
    gm_signer_free(s);
}

/* ---- the cache ---- */

static int64_t clock_of(void *arg)
{
    return *(int64_t *)arg;
}

/* A provider in front of a signer that can fail, or hold results until told to deliver. */
struct test_provider {
    struct gm_identity_provider base;
    struct gm_signer *signer;
    int fail;   /* nonzero: every issue fails with this */
    bool async; /* hold the callback in pending */
    int calls;
    gm_identity_issue_cb pending_cb;
    void *pending_arg;
    char pending_id[GM_SPIFFE_ID_MAX];
};

static int tp_issue(struct gm_identity_provider *p, const char *id, int64_t lifetime_s,
                    gm_identity_issue_cb cb, void *arg)
{
    struct test_provider *t = (struct test_provider *)p;
    struct gm_cert *c = NULL;
    int rc;

    t->calls++;
    if (t->async) {
        GM_ASSERT(t->pending_cb == NULL);
        t->pending_cb = cb;
        t->pending_arg = arg;
        snprintf(t->pending_id, sizeof(t->pending_id), "%s", id);
        return 0;
    }
    rc = t->fail ? t->fail : gm_signer_issue(t->signer, id, lifetime_s, &c);
    cb(arg, rc, c);
    return 0;
}

static void tp_deliver(struct test_provider *t)
{
    struct gm_cert *c = NULL;
    gm_identity_issue_cb cb = t->pending_cb;
    int rc;

    GM_ASSERT(cb != NULL);
    t->pending_cb = NULL;
    rc = t->fail ? t->fail : gm_signer_issue(t->signer, t->pending_id, 0, &c);
    cb(t->pending_arg, rc, c);
}

static char *tp_roots(struct gm_identity_provider *p, size_t *len)
{
    return gm_identity_roots_pem(gm_signer_provider(((struct test_provider *)p)->signer), len);
}

static void tp_free(struct gm_identity_provider *p)
{
}

static const struct gm_identity_provider_ops tp_ops = {"test", tp_issue, tp_roots, tp_free};

static void tp_init(struct test_provider *t)
{
    memset(t, 0, sizeof(*t));
    t->base.ops = &tp_ops;
    snprintf(t->base.trust_domain, sizeof(t->base.trust_domain), "%s", TD);
    GM_ASSERT(gm_signer_new_self_signed(TD, &t->signer) == 0);
}

struct updates {
    int n, last_status;
    char last_id[GM_SPIFFE_ID_MAX];
};

static void on_update(void *arg, const char *identity, int status)
{
    struct updates *u = arg;

    u->n++;
    u->last_status = status;
    snprintf(u->last_id, sizeof(u->last_id), "%s", identity);
}

/* The state string of the only (or first) entry of the states JSON. */
static const char *state_of(json_t *states, size_t i, const char *key)
{
    json_t *v = json_object_get(json_array_get(states, i), key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void test_cache_hit_and_refresh(void)
{
    struct test_provider t;
    int64_t t0 = (int64_t)time(NULL), now = t0;
    struct updates u = {0};
    struct gm_cert_cache_opts o = {
        .clock = clock_of, .clock_arg = &now, .on_update = on_update, .on_update_arg = &u};
    struct gm_cert_cache *c;
    struct gm_cert *a = NULL, *b = NULL, *x = NULL;
    json_t *st;
    char *dump;

    tp_init(&t);
    gm_signer_set_clock(t.signer, clock_of, &now);
    c = gm_cert_cache_new(&t.base, &o);
    CHECK_EQ_INT(gm_cert_cache_get(c, ID_A, &a), 0);
    GM_ASSERT(a != NULL);
    CHECK_EQ_INT(t.calls, 1);
    CHECK_EQ_INT(u.n, 1);
    CHECK_EQ_STR(u.last_id, ID_A);
    CHECK_EQ_INT(a->not_after - a->not_before, GM_CERT_LIFETIME_DEFAULT + GM_CERT_BACKDATE);
    /* Half of the life counted from issue (notBefore is backdated). */
    int64_t half = now + (a->not_after - now) / 2;

    /* before half life: the same certificate, no issue */
    CHECK_EQ_INT(gm_cert_cache_tick(c, now + 3600), half);
    now = half - 1;
    CHECK_EQ_INT(gm_cert_cache_tick(c, now), half);
    CHECK_EQ_INT(gm_cert_cache_get(c, ID_A, &x), 0);
    CHECK(x == a);
    gm_cert_unref(x);
    CHECK_EQ_INT(t.calls, 1);
    st = gm_cert_cache_states(c);
    CHECK_EQ_STR(state_of(st, 0, "state"), "valid");
    CHECK_EQ_STR(state_of(st, 0, "serial"), a->serial);
    json_decref(st);

    /* at half life: a new one; the old reference stays usable */
    now = half;
    CHECK(gm_cert_cache_tick(c, now) > now);
    CHECK_EQ_INT(t.calls, 2);
    CHECK_EQ_INT(u.n, 2);
    CHECK_EQ_INT(gm_cert_cache_get(c, ID_A, &b), 0);
    CHECK(b != NULL && b != a);
    CHECK(b != NULL && strcmp(b->serial, a->serial) != 0);
    CHECK_EQ_INT(atomic_load(&a->refs), 1); /* only ours */
    CHECK_EQ_INT(X509_check_private_key(a->leaf, a->key), 1);
    CHECK_EQ_STR(a->identity, ID_A);
    gm_cert_unref(a);

    /* states: no key material */
    st = gm_cert_cache_states(c);
    dump = json_dumps(st, JSON_SORT_KEYS);
    CHECK_EQ_INT(json_array_size(st), 1);
    CHECK_EQ_STR(state_of(st, 0, "identity"), ID_A);
    CHECK_EQ_STR(state_of(st, 0, "serial"), b ? b->serial : "");
    CHECK(state_of(st, 0, "not_after") != NULL && strchr(state_of(st, 0, "not_after"), 'Z'));
    CHECK(dump != NULL && strstr(dump, "PRIVATE") == NULL && strstr(dump, "BEGIN") == NULL);
    free(dump);
    json_decref(st);

    /* forget, and a later get mints afresh */
    gm_cert_cache_forget(c, ID_A);
    st = gm_cert_cache_states(c);
    CHECK_EQ_INT(json_array_size(st), 0);
    json_decref(st);
    CHECK_EQ_INT(gm_cert_cache_get(c, ID_A, &x), 0);
    CHECK(x != NULL && x != b);
    CHECK_EQ_INT(t.calls, 3);
    gm_cert_unref(x);
    gm_cert_unref(b);
    gm_cert_cache_free(c);
    gm_cert_cache_free(NULL);
    gm_signer_free(t.signer);
}

/* A certificate shorter-lived than the backdating is refreshed at half its life from issue,
 * not at once (a refresh counted from the backdated notBefore would re-issue on every tick). */
static void test_cache_short_lifetime(void)
{
    struct test_provider t;
    int64_t now = (int64_t)time(NULL);
    struct gm_cert_cache_opts o = {.lifetime_s = 60, .clock = clock_of, .clock_arg = &now};
    struct gm_cert_cache *c;
    struct gm_cert *a = NULL;

    tp_init(&t);
    gm_signer_set_clock(t.signer, clock_of, &now);
    c = gm_cert_cache_new(&t.base, &o);
    CHECK_EQ_INT(gm_cert_cache_get(c, ID_A, &a), 0);
    CHECK_EQ_INT(gm_cert_cache_tick(c, now), now + 30);
    CHECK_EQ_INT(t.calls, 1);
    now += 30;
    gm_cert_cache_tick(c, now);
    CHECK_EQ_INT(t.calls, 2);
    gm_cert_unref(a);
    gm_cert_cache_free(c);
    gm_signer_free(t.signer);
}

static void test_cache_backoff_and_expiry(void)
{
    struct test_provider t;
    int64_t now = (int64_t)time(NULL);
    struct gm_cert_cache_opts o = {.lifetime_s = 3600, .clock = clock_of, .clock_arg = &now};
    struct gm_cert_cache *c;
    struct gm_cert *a = NULL, *x = NULL;
    static const int64_t want[] = {1, 2, 4, 8, 16, 32, 60, 60};
    json_t *st;

    tp_init(&t);
    gm_signer_set_clock(t.signer, clock_of, &now);
    c = gm_cert_cache_new(&t.base, &o);
    CHECK_EQ_INT(gm_cert_cache_get(c, ID_A, &a), 0);
    GM_ASSERT(a != NULL);
    CHECK_EQ_INT(a->not_after - now, 3600);

    /* refresh fails: keep serving the valid cert, retry 1 s, 2 s, … 60 s */
    t.fail = -EIO;
    now = now + (a->not_after - now) / 2;
    for (size_t i = 0; i < GM_ARRAY_LEN(want); i++) {
        int calls = t.calls;
        int64_t next = gm_cert_cache_tick(c, now);
        CHECK_EQ_INT(t.calls, calls + 1);
        CHECK_EQ_INT(next - now, want[i]);
        CHECK_EQ_INT(gm_cert_cache_tick(c, next - 1), next); /* not yet */
        CHECK_EQ_INT(t.calls, calls + 1);
        CHECK_EQ_INT(gm_cert_cache_get(c, ID_A, &x), 0);
        CHECK(x == a);
        gm_cert_unref(x);
        now = next;
    }
    st = gm_cert_cache_states(c);
    CHECK_EQ_STR(state_of(st, 0, "state"), "refreshing");
    CHECK(state_of(st, 0, "error") != NULL);
    json_decref(st);

    /* past notAfter with the CA still failing: the expired cert is never handed out */
    now = a->not_after;
    gm_cert_cache_tick(c, now);
    CHECK_EQ_INT(gm_cert_cache_get(c, ID_A, &x), -EIO);
    CHECK(x == NULL);
    st = gm_cert_cache_states(c);
    CHECK_EQ_STR(state_of(st, 0, "state"), "expired");
    json_decref(st);

    /* the CA recovers: the next due tick issues */
    t.fail = 0;
    now += 60;
    gm_cert_cache_tick(c, now);
    CHECK_EQ_INT(gm_cert_cache_get(c, ID_A, &x), 0);
    CHECK(x != NULL && x != a);
    gm_cert_unref(x);
    st = gm_cert_cache_states(c);
    CHECK_EQ_STR(state_of(st, 0, "state"), "valid");
    CHECK(state_of(st, 0, "error") == NULL);
    json_decref(st);

    /* a first issue failing: get reports the error and backs off rather than retrying */
    t.fail = -EACCES;
    int calls = t.calls;
    CHECK_EQ_INT(gm_cert_cache_get(c, ID_B, &x), -EACCES);
    CHECK_EQ_INT(gm_cert_cache_get(c, ID_B, &x), -EACCES);
    CHECK_EQ_INT(t.calls, calls + 1);
    st = gm_cert_cache_states(c);
    CHECK_EQ_STR(state_of(st, 1, "identity"), ID_B);
    CHECK_EQ_STR(state_of(st, 1, "state"), "initializing");
    json_decref(st);
    now += 1;
    t.fail = 0;
    CHECK_EQ_INT(gm_cert_cache_get(c, ID_B, &x), 0); /* backoff elapsed: get retries itself */
    gm_cert_unref(x);

    gm_cert_unref(a);
    gm_cert_cache_free(c);
    gm_signer_free(t.signer);
}

static void test_cache_async_and_limits(void)
{
    struct test_provider t;
    int64_t now = (int64_t)time(NULL);
    struct updates u = {0};
    struct gm_cert_cache_opts o = {.max_identities = 2,
                                   .clock = clock_of,
                                   .clock_arg = &now,
                                   .on_update = on_update,
                                   .on_update_arg = &u};
    struct gm_cert_cache *c;
    struct gm_cert *x = NULL;

    tp_init(&t);
    t.async = true;
    c = gm_cert_cache_new(&t.base, &o);
    CHECK_EQ_INT(gm_cert_cache_get(c, ID_A, &x), -EAGAIN);
    CHECK_EQ_INT(gm_cert_cache_get(c, ID_A, &x), -EAGAIN); /* no second issue */
    CHECK_EQ_INT(t.calls, 1);
    CHECK_EQ_INT(u.n, 0);
    tp_deliver(&t);
    CHECK_EQ_INT(u.n, 1);
    CHECK_EQ_INT(u.last_status, 0);
    CHECK_EQ_INT(gm_cert_cache_get(c, ID_A, &x), 0);
    CHECK(x != NULL);
    gm_cert_unref(x);

    /* forgotten while in flight: the late result is dropped (ASan/valgrind check the unref) */
    CHECK_EQ_INT(gm_cert_cache_get(c, ID_B, &x), -EAGAIN);
    gm_cert_cache_forget(c, ID_B);
    tp_deliver(&t);
    CHECK_EQ_INT(u.n, 1);

    /* the cache freed while in flight: same */
    CHECK_EQ_INT(gm_cert_cache_get(c, ID_B, &x), -EAGAIN);
    CHECK_EQ_INT(gm_cert_cache_get(c, "spiffe://cluster.local/ns/x/sa/y", &x), -ENOSPC);
    CHECK_EQ_INT(gm_cert_cache_get(c, ID_OT, &x), -EPERM);
    CHECK_EQ_INT(gm_cert_cache_get(c, "spiffe://cluster.local/ns/x", &x), -EINVAL);
    CHECK_EQ_INT(gm_cert_cache_get(c, "", &x), -EINVAL);
    gm_cert_cache_free(c);
    tp_deliver(&t);
    CHECK_EQ_INT(u.n, 1);
    gm_signer_free(t.signer);
}

/* Through the signer's own provider: synchronous, the production wiring. */
static void test_cache_with_signer(void)
{
    struct gm_signer *s = NULL;
    struct gm_cert_cache *c;
    struct gm_cert *x = NULL, *y = NULL;

    GM_ASSERT(gm_signer_new_self_signed(TD, &s) == 0);
    CHECK_EQ_STR(gm_signer_provider(s)->ops->name, "local-signer");
    c = gm_cert_cache_new(gm_signer_provider(s), NULL);
    CHECK_EQ_INT(gm_cert_cache_get(c, ID_A, &x), 0);
    CHECK_EQ_INT(gm_cert_cache_get(c, ID_A, &y), 0);
    CHECK(x != NULL && x == y);
    CHECK(gm_cert_cache_tick(c, (int64_t)time(NULL)) > (int64_t)time(NULL) + 11 * 3600);
    gm_cert_unref(x);
    gm_cert_unref(y);
    gm_cert_cache_free(c);
    gm_signer_free(s);
}

/* ---- the runtime: CA rotation without a restart ---- */

static char *cat(const char *a, const char *b)
{
    return gm_xasprintf("%s%s", a, b);
}

/* The issuer's subject of the certificate the runtime hands out for ID_A now. */
static bool rt_leaf_verifies(struct gm_identity_rt *rt, const char *roots)
{
    struct gm_cert *c = NULL;
    bool ok = gm_identity_rt_cert(rt, ID_A, &c) == 0 && verifies(c->leaf, c->chain, roots);
    gm_cert_unref(c);
    return ok;
}

static json_t *rt_dump_get(struct gm_identity_rt *rt, const char *key)
{
    json_t *d = gm_identity_rt_dump(rt);
    json_t *v = json_deep_copy(json_object_get(d, key));
    json_decref(d);
    return v;
}

static void test_rt_ca_reload(void)
{
    char dir[] = "/tmp/gm-test-identity-XXXXXX", cpath[64], kpath[64];
    struct gm_signer *a = NULL, *b = NULL;
    char *ac, *ak, *bc, *bk;
    size_t l1, l2;
    uv_loop_t loop;
    struct gm_identity_rt *rt = NULL;

    GM_ASSERT(mkdtemp(dir) != NULL);
    snprintf(cpath, sizeof(cpath), "%s/ca.crt", dir);
    snprintf(kpath, sizeof(kpath), "%s/ca.key", dir);
    GM_ASSERT(gm_signer_new_self_signed(TD, &a) == 0 && gm_signer_new_self_signed(TD, &b) == 0);
    GM_ASSERT(gm_signer_ca_to_pem(a, &ac, &l1, &ak, &l2) == 0);
    GM_ASSERT(gm_signer_ca_to_pem(b, &bc, &l1, &bk, &l2) == 0);
    char *ra = gm_identity_roots_pem(gm_signer_provider(a), NULL);
    char *rb = gm_identity_roots_pem(gm_signer_provider(b), NULL);
    write_file(cpath, ac);
    write_file(kpath, ak);
    uv_loop_init(&loop);
    CHECK_EQ_INT(gm_identity_rt_start(&loop,
                                      &(struct gm_identity_rt_opts){.ca_cert = cpath,
                                                                    .ca_key = kpath,
                                                                    .trust_domain = TD,
                                                                    .ca_check_ms = 3600000},
                                      &rt),
                 0);
    GM_ASSERT(rt != NULL);
    CHECK_EQ_INT(gm_identity_rt_check_ca(rt), 0); /* unchanged */
    CHECK(rt_leaf_verifies(rt, ra) && !rt_leaf_verifies(rt, rb));
    struct gm_cert *old = NULL;
    CHECK_EQ_INT(gm_identity_rt_cert(rt, ID_A, &old), 0);
    SSL *old_ssl = gm_identity_rt_client_ssl(rt, ID_A, ID_B);
    CHECK(old_ssl != NULL);

    /* 1: the new root is trusted too; A still signs */
    char *both = cat(ac, bc);
    write_file(cpath, both);
    CHECK_EQ_INT(gm_identity_rt_check_ca(rt), 1);
    CHECK(rt_leaf_verifies(rt, ra));
    json_t *bundle = rt_dump_get(rt, "bundle");
    CHECK_EQ_INT((int)json_array_size(json_object_get(bundle, "roots")), 2);
    json_decref(bundle);
    /* 2: B signs (both roots still trusted): new leaves chain to B */
    char *both_b = cat(bc, ac);
    write_file(cpath, both_b);
    write_file(kpath, bk);
    CHECK_EQ_INT(gm_identity_rt_check_ca(rt), 1);
    CHECK(rt_leaf_verifies(rt, rb) && !rt_leaf_verifies(rt, ra));
    json_t *reloads = rt_dump_get(rt, "reloads");
    CHECK_EQ_INT((int)json_integer_value(reloads), 2);
    json_decref(reloads);
    /* what was handed out before lives on: open connections are untouched */
    CHECK(old != NULL && verifies(old->leaf, old->chain, ra));
    CHECK(SSL_get_SSL_CTX(old_ssl) != NULL && SSL_get_certificate(old_ssl) != NULL);

    /* a key that does not match: refused, reported, B stays */
    write_file(kpath, ak);
    CHECK(gm_identity_rt_check_ca(rt) < 0);
    CHECK(rt_leaf_verifies(rt, rb));
    json_t *e = rt_dump_get(rt, "reload_error");
    CHECK(json_is_string(e) && strstr(json_string_value(e), "does not match") != NULL);
    json_decref(e);
    CHECK(gm_identity_rt_check_ca(rt) < 0); /* the same contents: refused again, quietly */
    /* gone, then garbage */
    unlink(kpath);
    CHECK_EQ_INT(gm_identity_rt_check_ca(rt), -ENOENT);
    write_file(kpath, "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n");
    CHECK(gm_identity_rt_check_ca(rt) < 0);
    CHECK(rt_leaf_verifies(rt, rb));
    /* back to what is loaded: nothing to reload, the error is gone */
    write_file(kpath, bk);
    CHECK_EQ_INT(gm_identity_rt_check_ca(rt), 0);
    e = rt_dump_get(rt, "reload_error");
    CHECK(e == NULL);
    /* 3: the old root goes */
    write_file(cpath, bc);
    CHECK_EQ_INT(gm_identity_rt_check_ca(rt), 1);
    bundle = rt_dump_get(rt, "bundle");
    CHECK_EQ_INT((int)json_array_size(json_object_get(bundle, "roots")), 1);
    json_decref(bundle);

    gm_identity_rt_stop(rt);
    uv_run(&loop, UV_RUN_DEFAULT);
    gm_identity_rt_free(rt);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    SSL_free(old_ssl);
    gm_cert_unref(old);
    unlink(cpath);
    unlink(kpath);
    rmdir(dir);
    free(both);
    free(both_b);
    free(ra);
    free(rb);
    free(ac);
    free(bc);
    OPENSSL_cleanse(ak, strlen(ak));
    OPENSSL_cleanse(bk, strlen(bk));
    free(ak);
    free(bk);
    gm_signer_free(a);
    gm_signer_free(b);
}

int main(void)
{
    test_self_signed_issue();
    test_pem_export();
    test_rsa_and_bundles();
    test_from_files();
    test_cache_hit_and_refresh();
    test_cache_backoff_and_expiry();
    test_cache_short_lifetime();
    test_cache_async_and_limits();
    test_cache_with_signer();
    test_rt_ca_reload();
    return TEST_DONE();
}
