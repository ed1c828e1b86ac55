/* Workload certificates: refcounted certs, the local signer and the per-identity cache. */
#include "gammamesh/identity.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "gammamesh/util.h"

#define CA_LIFETIME   (10 * 366 * 24 * 3600)
#define PEM_FILE_MAX  (1024 * 1024)
#define CACHE_BUCKETS 512
#define CACHE_MAX_IDS 4096

/* ---- certificates ---- */

static int64_t asn1_time_unix(const ASN1_TIME *t)
{
    struct tm tm;

    if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
        return 0;
    return (int64_t)timegm(&tm);
}

static void serial_hex(X509 *x, char *out, size_t len)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;

    snprintf(out, len, "%s", hex ? hex : "");
    for (char *p = out; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
    OPENSSL_free(hex);
    BN_free(bn);
}

/* A cert owning leaf, key and chain (never NULL: an empty stack at least). */
static struct gm_cert *cert_new(X509 *leaf, EVP_PKEY *key, STACK_OF(X509) *chain, const char *id)
{
    struct gm_cert *c = gm_xcalloc(1, sizeof(*c));

    atomic_init(&c->refs, 1);
    c->leaf = leaf;
    c->key = key;
    c->chain = chain;
    c->not_before = asn1_time_unix(X509_get0_notBefore(leaf));
    c->not_after = asn1_time_unix(X509_get0_notAfter(leaf));
    snprintf(c->identity, sizeof(c->identity), "%s", id);
    serial_hex(leaf, c->serial, sizeof(c->serial));
    return c;
}

struct gm_cert *gm_cert_ref(struct gm_cert *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void gm_cert_unref(struct gm_cert *c)
{
    if (c == NULL || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    X509_free(c->leaf);
    EVP_PKEY_free(c->key);
    sk_X509_pop_free(c->chain, X509_free);
    free(c);
}

/* Move a memory BIO's contents into a fresh NUL-terminated string. */
static int bio_take(BIO *bio, char **out, size_t *len)
{
    char *data;
    long n = BIO_get_mem_data(bio, &data);

    if (n < 0)
        return -ENOMEM;
    *out = gm_xstrndup(data, (size_t)n);
    if (len != NULL)
        *len = (size_t)n;
    return 0;
}

static int certs_to_pem(X509 *first, STACK_OF(X509) *rest, char **out, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int rc = -ENOMEM;

    *out = NULL;
    if (bio == NULL || (first != NULL && !PEM_write_bio_X509(bio, first)))
        goto done;
    for (int i = 0; i < sk_X509_num(rest); i++)
        if (!PEM_write_bio_X509(bio, sk_X509_value(rest, i)))
            goto done;
    rc = bio_take(bio, out, len);
done:
    BIO_free(bio);
    return rc;
}

int gm_cert_to_pem(const struct gm_cert *c, char **out, size_t *len)
{
    return certs_to_pem(c->leaf, c->chain, out, len);
}

static int key_to_pem(EVP_PKEY *key, char **out, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int rc = -ENOMEM;

    *out = NULL;
    if (bio != NULL && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
        rc = bio_take(bio, out, len);
    BIO_free(bio);
    return rc;
}

int gm_cert_key_to_pem(const struct gm_cert *c, char **out, size_t *len)
{
    return key_to_pem(c->key, out, len);
}

/* ---- provider interface ---- */

int gm_identity_issue(struct gm_identity_provider *p, const char *spiffe_id, int64_t lifetime_s,
                      gm_identity_issue_cb cb, void *arg)
{
    return p->ops->issue(p, spiffe_id, lifetime_s, cb, arg);
}

char *gm_identity_roots_pem(struct gm_identity_provider *p, size_t *len)
{
    return p->ops->roots_pem(p, len);
}

void gm_identity_free(struct gm_identity_provider *p)
{
    if (p != NULL)
        p->ops->free(p);
}

/* ---- the local signer ---- */

struct gm_signer {
    struct gm_identity_provider base;
    X509 *ca; /* signs leaves */
    EVP_PKEY *ca_key;
    STACK_OF(X509) *chain; /* intermediates sent with each leaf (ca first when not a root) */
    STACK_OF(X509) *roots; /* self-signed trust anchors */
    int64_t ca_not_after;
    gm_clock_fn clock; /* NULL: the wall clock */
    void *clock_arg;
};

void gm_signer_set_clock(struct gm_signer *s, gm_clock_fn clock, void *arg)
{
    s->clock = clock;
    s->clock_arg = arg;
}

static int64_t signer_now(const struct gm_signer *s)
{
    return s->clock ? s->clock(s->clock_arg) : (int64_t)time(NULL);
}

static int fail_with(char *err, size_t err_len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_with(char *err, size_t err_len, int rc, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && err_len > 0) {
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    ERR_clear_error();
    return rc;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

static void signer_free_ops(struct gm_identity_provider *p)
{
    gm_signer_free((struct gm_signer *)p);
}

static int signer_issue_ops(struct gm_identity_provider *p, const char *id, int64_t lifetime_s,
                            gm_identity_issue_cb cb, void *arg)
{
    struct gm_cert *c = NULL;
    int rc = gm_signer_issue((struct gm_signer *)p, id, lifetime_s, &c);

    cb(arg, rc, c);
    return 0;
}

static char *signer_roots_ops(struct gm_identity_provider *p, size_t *len)
{
    char *pem = NULL;

    certs_to_pem(NULL, ((struct gm_signer *)p)->roots, &pem, len);
    return pem;
}

static const struct gm_identity_provider_ops signer_ops = {
    .name = "local-signer",
    .issue = signer_issue_ops,
    .roots_pem = signer_roots_ops,
    .free = signer_free_ops,
};

static struct gm_signer *signer_alloc(const char *td)
{
    struct gm_signer *s = gm_xcalloc(1, sizeof(*s));

    s->base.ops = &signer_ops;
    snprintf(s->base.trust_domain, sizeof(s->base.trust_domain), "%s", td);
    s->chain = sk_X509_new_null();
    s->roots = sk_X509_new_null();
    GM_ASSERT(s->chain != NULL && s->roots != NULL);
    return s;
}

void gm_signer_free(struct gm_signer *s)
{
    if (s == NULL)
        return;
    X509_free(s->ca);
    EVP_PKEY_free(s->ca_key);
    sk_X509_pop_free(s->chain, X509_free);
    sk_X509_pop_free(s->roots, X509_free);
    free(s);
}

int gm_signer_ca_to_pem(const struct gm_signer *s, char **cert_pem, size_t *cert_len,
                        char **key_pem, size_t *key_len)
{
    STACK_OF(X509) *rest = sk_X509_new_null();
    int rc = -ENOMEM;

    *cert_pem = *key_pem = NULL;
    for (int i = 0; rest != NULL && i < sk_X509_num(s->chain) + sk_X509_num(s->roots); i++) {
        int nc = sk_X509_num(s->chain);
        X509 *x = i < nc ? sk_X509_value(s->chain, i) : sk_X509_value(s->roots, i - nc);
        if (x != s->ca && sk_X509_push(rest, x) <= 0)
            goto done;
    }
    if (rest != NULL && (rc = certs_to_pem(s->ca, rest, cert_pem, cert_len)) == 0 &&
        (rc = key_to_pem(s->ca_key, key_pem, key_len)) < 0) {
        free(*cert_pem);
        *cert_pem = NULL;
    }
done:
    sk_X509_free(rest); /* borrowed entries */
    return rc;
}

/* {"subject": …, "sha256": hex of the DER} of a certificate. */
static json_t *cert_json(X509 *x)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1] = "", subject[256] = "";

    if (X509_digest(x, EVP_sha256(), md, &n) == 1)
        *gm_fmt_hex(hex, md, n) = '\0';
    X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
    return json_pack("{s:s, s:s}", "subject", subject, "sha256", hex);
}

json_t *gm_signer_describe(const struct gm_signer *s)
{
    json_t *ca = cert_json(s->ca), *roots = json_array();
    char when[32];

    if (gm_fmt_rfc3339(when, sizeof(when), s->ca_not_after))
        json_object_set_new(ca, "not_after", json_string(when));
    for (int i = 0; i < sk_X509_num(s->roots); i++)
        json_array_append_new(roots, cert_json(sk_X509_value(s->roots, i)));
    return json_pack("{s:o, s:o, s:i}", "signing_ca", ca, "roots", roots, "intermediates",
                     sk_X509_num(s->chain));
}

struct gm_identity_provider *gm_signer_provider(struct gm_signer *s)
{
    return &s->base;
}

/* Every certificate of a PEM bundle, in order; NULL when there is none or one is malformed. */
static STACK_OF(X509) *read_certs(const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    STACK_OF(X509_INFO) *infos =
        bio ? PEM_X509_INFO_read_bio_ex(bio, NULL, no_passphrase, NULL, NULL, NULL) : NULL;
    STACK_OF(X509) *certs = sk_X509_new_null();

    for (int i = 0; infos != NULL && certs != NULL && i < sk_X509_INFO_num(infos); i++) {
        X509_INFO *xi = sk_X509_INFO_value(infos, i);
        if (xi->x509 != NULL && sk_X509_push(certs, xi->x509) > 0)
            xi->x509 = NULL; /* moved */
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    BIO_free(bio);
    if (certs != NULL && sk_X509_num(certs) == 0) {
        sk_X509_free(certs);
        certs = NULL;
    }
    return certs;
}

static EVP_PKEY *read_key(const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *key =
        bio ? PEM_read_bio_PrivateKey_ex(bio, NULL, no_passphrase, NULL, NULL, NULL) : NULL;

    BIO_free(bio);
    return key;
}

/* Sort the bundle: self-signed certificates are roots, the rest intermediates. */
static int signer_sort_bundle(struct gm_signer *s, STACK_OF(X509) *certs, char *err, size_t n)
{
    X509 *x;

    while ((x = sk_X509_shift(certs)) != NULL) {
        STACK_OF(X509) *to = X509_self_signed(x, 1) == 1 ? s->roots : s->chain;
        if (sk_X509_push(to, x) <= 0) {
            X509_free(x);
            return fail_with(err, n, -ENOMEM, "out of memory");
        }
    }
    if (sk_X509_num(s->roots) == 0)
        return fail_with(err, n, -EINVAL, "CA bundle holds no self-signed root");
    return 0;
}

/* The signing CA must chain to a root of its own bundle, now. */
static int signer_verify_ca(struct gm_signer *s, char *err, size_t n)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int ok = 0, code = X509_V_OK;

    for (int i = 0; store != NULL && i < sk_X509_num(s->roots); i++)
        X509_STORE_add_cert(store, sk_X509_value(s->roots, i));
    if (store != NULL && ctx != NULL && X509_STORE_CTX_init(ctx, store, s->ca, s->chain)) {
        ok = X509_verify_cert(ctx) == 1;
        code = X509_STORE_CTX_get_error(ctx);
    }
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    if (!ok)
        return fail_with(err, n, -EINVAL, "CA certificate does not verify against its bundle: %s",
                         X509_verify_cert_error_string(code));
    return 0;
}

static int signer_check_key(X509 *ca, EVP_PKEY *key, char *err, size_t n)
{
    if (!EVP_PKEY_is_a(key, "EC") && !EVP_PKEY_is_a(key, "RSA"))
        return fail_with(err, n, -EINVAL, "CA key must be EC or RSA, not %s",
                         EVP_PKEY_get0_type_name(key));
    if (X509_check_ca(ca) < 1)
        return fail_with(err, n, -EINVAL, "first certificate of the bundle is not a CA");
    if (X509_check_private_key(ca, key) != 1)
        return fail_with(err, n, -EINVAL, "CA key does not match the CA certificate");
    return 0;
}

int gm_signer_new_from_pem(const char *cert_pem, size_t cert_len, const char *key_pem,
                           size_t key_len, const char *trust_domain, struct gm_signer **out,
                           char *err, size_t err_len)
{
    STACK_OF(X509) *certs = NULL;
    struct gm_signer *s = NULL;
    int rc;

    *out = NULL;
    if (trust_domain == NULL || !gm_spiffe_td_valid(trust_domain, strlen(trust_domain)))
        return fail_with(err, err_len, -EINVAL, "invalid trust domain");
    if (cert_len == 0 || cert_len > INT_MAX || key_len == 0 || key_len > INT_MAX)
        return fail_with(err, err_len, -EINVAL, "empty or oversized PEM");
    s = signer_alloc(trust_domain);
    certs = read_certs(cert_pem, cert_len);
    s->ca_key = read_key(key_pem, key_len);
    if (certs == NULL || s->ca_key == NULL) {
        rc = fail_with(err, err_len, -EINVAL, "%s",
                       certs ? "no usable unencrypted private key" : "no PEM certificate");
        goto fail;
    }
    s->ca = sk_X509_value(certs, 0);
    X509_up_ref(s->ca);
    s->ca_not_after = asn1_time_unix(X509_get0_notAfter(s->ca));
    if ((rc = signer_check_key(s->ca, s->ca_key, err, err_len)) < 0 ||
        (rc = signer_sort_bundle(s, certs, err, err_len)) < 0 ||
        (rc = signer_verify_ca(s, err, err_len)) < 0)
        goto fail;
    sk_X509_free(certs);
    *out = s;
    return 0;
fail:
    sk_X509_pop_free(certs, X509_free);
    gm_signer_free(s);
    return rc;
}

/* Read a whole PEM file (1..PEM_FILE_MAX bytes); the caller frees *out. */
static int read_file(const char *path, char **out, size_t *len, char *err, size_t err_len)
{
    int rc = gm_read_file(path, PEM_FILE_MAX, out, len);

    if (rc == 0 && *len == 0) {
        free(*out);
        rc = -EINVAL;
    }
    if (rc == -EINVAL || rc == -EFBIG)
        return fail_with(err, err_len, -EINVAL, "%s: not a regular file of 1..%d bytes", path,
                         PEM_FILE_MAX);
    if (rc < 0)
        return fail_with(err, err_len, rc, "%s: %s", path, strerror(-rc));
    return 0;
}

int gm_signer_load_files(const char *ca_cert_path, const char *ca_key_path,
                         const char *trust_domain, const uint8_t *unless,
                         uint8_t digest[GM_CA_DIGEST_LEN], struct gm_signer **out, char *err,
                         size_t err_len)
{
    char *cert = NULL, *key = NULL;
    size_t cert_len = 0, key_len = 0;
    unsigned int n = 0;
    int rc;

    *out = NULL;
    if ((rc = read_file(ca_cert_path, &cert, &cert_len, err, err_len)) == 0 &&
        (rc = read_file(ca_key_path, &key, &key_len, err, err_len)) == 0) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        uint8_t sep = 0;
        if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
            EVP_DigestUpdate(md, cert, cert_len) != 1 || EVP_DigestUpdate(md, &sep, 1) != 1 ||
            EVP_DigestUpdate(md, key, key_len) != 1 || EVP_DigestFinal_ex(md, digest, &n) != 1 ||
            n != GM_CA_DIGEST_LEN)
            rc = fail_with(err, err_len, -EIO, "SHA-256 failed");
        EVP_MD_CTX_free(md);
    }
    if (rc == 0 && unless != NULL && memcmp(digest, unless, GM_CA_DIGEST_LEN) == 0)
        rc = 1; /* what is loaded already */
    else if (rc == 0)
        rc = gm_signer_new_from_pem(cert, cert_len, key, key_len, trust_domain, out, err, err_len);
    free(cert);
    if (key != NULL)
        OPENSSL_cleanse(key, key_len);
    free(key);
    return rc;
}

int gm_signer_new_from_files(const char *ca_cert_path, const char *ca_key_path,
                             const char *trust_domain, struct gm_signer **out, char *err,
                             size_t err_len)
{
    uint8_t digest[GM_CA_DIGEST_LEN];

    return gm_signer_load_files(ca_cert_path, ca_key_path, trust_domain, NULL, digest, out, err,
                                err_len);
}

/* ---- building certificates ---- */

static bool set_random_serial(X509 *x)
{
    unsigned char buf[16];
    BIGNUM *bn = NULL;
    bool ok = false;

    if (RAND_bytes(buf, sizeof(buf)) != 1)
        return false;
    bn = BN_bin2bn(buf, sizeof(buf), NULL); /* unsigned: DER adds a 0x00 when the top bit is set */
    if (bn != NULL && BN_is_zero(bn))
        BN_one(bn); /* a serial must be positive */
    ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok;
}

static bool add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    bool ok;

    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
    ok = ext != NULL && X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

/* The critical URI SAN, built directly so the ID never goes through config-string parsing. */
static bool add_uri_san(X509 *x, const char *uri)
{
    GENERAL_NAMES *gens = GENERAL_NAMES_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    bool ok = false;

    if (gens == NULL || gn == NULL || ia5 == NULL || !ASN1_STRING_set(ia5, uri, (int)strlen(uri)))
        goto done;
    GENERAL_NAME_set0_value(gn, GEN_URI, ia5);
    ia5 = NULL;
    if (!sk_GENERAL_NAME_push(gens, gn))
        goto done;
    gn = NULL;
    ok = X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 1, X509V3_ADD_DEFAULT) == 1;
done:
    ASN1_IA5STRING_free(ia5);
    GENERAL_NAME_free(gn);
    GENERAL_NAMES_free(gens);
    return ok;
}

/* Version, serial, validity and key: what every certificate we make has. */
static X509 *cert_skeleton(EVP_PKEY *key, int64_t not_before, int64_t not_after)
{
    X509 *x = X509_new();

    if (x == NULL || !X509_set_version(x, X509_VERSION_3) || !set_random_serial(x) ||
        !ASN1_TIME_set(X509_getm_notBefore(x), (time_t)not_before) ||
        !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after) || !X509_set_pubkey(x, key)) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static X509 *leaf_build(const struct gm_signer *s, const char *id, EVP_PKEY *key, int64_t nb,
                        int64_t na)
{
    X509 *x = cert_skeleton(key, nb, na);

    /* Empty subject, as Istio: the identity is the critical URI SAN alone. */
    if (x == NULL || !X509_set_issuer_name(x, X509_get_subject_name(s->ca)) ||
        !add_ext(x, s->ca, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(x, s->ca, NID_key_usage, "critical,digitalSignature,keyEncipherment") ||
        !add_ext(x, s->ca, NID_ext_key_usage, "serverAuth,clientAuth") || !add_uri_san(x, id) ||
        (X509_get0_subject_key_id(s->ca) != NULL &&
         !add_ext(x, s->ca, NID_authority_key_identifier, "keyid")) ||
        X509_sign(x, s->ca_key, EVP_sha256()) <= 0) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static EVP_PKEY *p256_new(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/* 0, or -EINVAL / -EPERM for an ID this signer must not mint. */
static int signer_check_id(const struct gm_signer *s, const char *id, int64_t lifetime_s)
{
    struct gm_spiffe_id sid;

    if (id == NULL || gm_spiffe_parse(id, strlen(id), &sid) < 0 || lifetime_s < 0 ||
        lifetime_s > GM_CERT_LIFETIME_MAX)
        return -EINVAL;
    if (strcmp(sid.trust_domain, s->base.trust_domain) != 0)
        return -EPERM;
    return 0;
}

int gm_signer_issue(struct gm_signer *s, const char *spiffe_id, int64_t lifetime_s,
                    struct gm_cert **out)
{
    int64_t now = signer_now(s), na;
    STACK_OF(X509) *chain = NULL;
    EVP_PKEY *key = NULL;
    X509 *leaf = NULL;
    int rc;

    *out = NULL;
    if ((rc = signer_check_id(s, spiffe_id, lifetime_s)) < 0)
        return rc;
    na = now + (lifetime_s ? lifetime_s : GM_CERT_LIFETIME_DEFAULT);
    if (na > s->ca_not_after)
        na = s->ca_not_after;
    if ((key = p256_new()) == NULL || (chain = X509_chain_up_ref(s->chain)) == NULL ||
        (leaf = leaf_build(s, spiffe_id, key, now - GM_CERT_BACKDATE, na)) == NULL)
        goto fail;
    *out = cert_new(leaf, key, chain, spiffe_id);
    return 0;
fail:
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return -EIO;
}

static X509 *root_build(const char *td, EVP_PKEY *key)
{
    int64_t now = (int64_t)time(NULL);
    X509 *x = cert_skeleton(key, now - GM_CERT_BACKDATE, now + CA_LIFETIME);
    X509_NAME *name = x ? X509_get_subject_name(x) : NULL;

    if (name == NULL ||
        !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)td, -1, -1,
                                    0) ||
        !X509_set_issuer_name(x, name) ||
        !add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") ||
        !add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
        !add_ext(x, x, NID_subject_key_identifier, "hash") ||
        X509_sign(x, key, EVP_sha256()) <= 0) {
        X509_free(x);
        return NULL;
    }
    return x;
}

int gm_signer_new_self_signed(const char *trust_domain, struct gm_signer **out)
{
    struct gm_signer *s;

    *out = NULL;
    if (trust_domain == NULL || !gm_spiffe_td_valid(trust_domain, strlen(trust_domain)))
        return -EINVAL;
    s = signer_alloc(trust_domain);
    if ((s->ca_key = p256_new()) == NULL || (s->ca = root_build(trust_domain, s->ca_key)) == NULL ||
        !X509_up_ref(s->ca) || sk_X509_push(s->roots, s->ca) <= 0) {
        gm_signer_free(s);
        ERR_clear_error();
        return -EIO;
    }
    s->ca_not_after = asn1_time_unix(X509_get0_notAfter(s->ca));
    *out = s;
    return 0;
}

/* ---- the per-identity cache ---- */

struct cache_req;

struct cache_entry {
    struct cache_entry *next; /* bucket chain */
    struct gm_cert_cache *cache;
    struct gm_cert *cert;  /* newest certificate; NULL before the first */
    struct cache_req *req; /* an issue in flight, or NULL */
    int64_t due;           /* when tick (re)issues */
    int64_t backoff;       /* seconds; 0 after a success */
    int last_error;        /* 0 or the -errno of the last failed issue */
    char id[GM_SPIFFE_ID_MAX];
};

/* One issue in flight; entry NULL once the entry is gone (the result is then dropped). */
struct cache_req {
    struct cache_entry *entry;
};

struct gm_cert_cache {
    struct gm_identity_provider *provider;
    struct gm_cert_cache_opts o;
    struct cache_entry *buckets[CACHE_BUCKETS];
    size_t n;
    int64_t now; /* the time of the current get or tick, when busy */
    int busy;
};

static int64_t wall_clock(void *arg)
{
    return (int64_t)time(NULL);
}

struct gm_cert_cache *gm_cert_cache_new(struct gm_identity_provider *p,
                                        const struct gm_cert_cache_opts *opts)
{
    struct gm_cert_cache *c = gm_xcalloc(1, sizeof(*c));

    c->provider = p;
    if (opts != NULL)
        c->o = *opts;
    if (c->o.lifetime_s <= 0)
        c->o.lifetime_s = GM_CERT_LIFETIME_DEFAULT;
    if (c->o.max_identities == 0)
        c->o.max_identities = CACHE_MAX_IDS;
    if (c->o.clock == NULL)
        c->o.clock = wall_clock;
    return c;
}

static void entry_free(struct cache_entry *e)
{
    if (e->req != NULL)
        e->req->entry = NULL; /* the provider still calls back; drop the result then */
    gm_cert_unref(e->cert);
    free(e);
}

void gm_cert_cache_free(struct gm_cert_cache *c)
{
    if (c == NULL)
        return;
    for (size_t b = 0; b < CACHE_BUCKETS; b++) {
        struct cache_entry *e = c->buckets[b], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            entry_free(e);
        }
    }
    free(c);
}

static struct cache_entry **entry_slot(struct gm_cert_cache *c, const char *id)
{
    struct cache_entry **pp = &c->buckets[gm_hash_str(id) % CACHE_BUCKETS];

    while (*pp != NULL && strcmp((*pp)->id, id) != 0)
        pp = &(*pp)->next;
    return pp;
}

static void notify(struct cache_entry *e, int status)
{
    if (e->cache->o.on_update != NULL)
        e->cache->o.on_update(e->cache->o.on_update_arg, e->id, status);
}

static void entry_failed(struct cache_entry *e, int rc, int64_t now)
{
    e->backoff = e->backoff ? e->backoff * 2 : GM_CERT_BACKOFF_MIN;
    if (e->backoff > GM_CERT_BACKOFF_MAX)
        e->backoff = GM_CERT_BACKOFF_MAX;
    e->due = now + e->backoff;
    e->last_error = rc;
}

/* Half of the certificate's useful life, counted from when it was issued: notBefore is
 * backdated for clock skew, and counting from it would put the refresh of a short-lived
 * certificate before its issue (a re-issue on every tick). */
static int64_t half_life(const struct gm_cert *cert)
{
    int64_t issued = cert->not_before + GM_CERT_BACKDATE;

    if (issued >= cert->not_after)
        issued = cert->not_before;
    return issued + (cert->not_after - issued) / 2;
}

/* Install a fresh certificate; the old one lives on in the references others hold. */
static void entry_installed(struct cache_entry *e, struct gm_cert *cert, int64_t now)
{
    gm_cert_unref(e->cert);
    e->cert = cert;
    e->backoff = 0;
    e->last_error = 0;
    e->due = half_life(cert);
    if (e->due < now + GM_CERT_BACKOFF_MIN) /* a short-lived CA must not make us spin */
        e->due = now + GM_CERT_BACKOFF_MIN;
}

static void on_issued(void *arg, int status, struct gm_cert *cert)
{
    struct cache_req *r = arg;
    struct cache_entry *e = r->entry;
    int64_t now;

    free(r);
    if (e == NULL) {
        gm_cert_unref(cert);
        return;
    }
    e->req = NULL;
    now = e->cache->busy ? e->cache->now : e->cache->o.clock(e->cache->o.clock_arg);
    if (status < 0 || cert == NULL) {
        gm_cert_unref(cert);
        entry_failed(e, status < 0 ? status : -EIO, now);
    } else {
        entry_installed(e, cert, now);
    }
    notify(e, e->last_error);
}

static void entry_issue(struct cache_entry *e, int64_t now)
{
    struct gm_cert_cache *c = e->cache;
    struct cache_req *r = gm_xcalloc(1, sizeof(*r));
    int rc;

    r->entry = e;
    e->req = r;
    rc = gm_identity_issue(c->provider, e->id, c->o.lifetime_s, on_issued, r);
    if (rc < 0) { /* the callback will not run */
        e->req = NULL;
        free(r);
        entry_failed(e, rc, now);
        notify(e, rc);
    }
}

static bool entry_usable(const struct cache_entry *e, int64_t now)
{
    return e->cert != NULL && now >= e->cert->not_before && now < e->cert->not_after;
}

/* The entry for id, created if it is new; NULL with *rc on refusal. */
static struct cache_entry *entry_get(struct gm_cert_cache *c, const char *id, int *rc)
{
    struct cache_entry **pp = entry_slot(c, id), *e = *pp;
    struct gm_spiffe_id sid;

    if (e != NULL)
        return e;
    *rc = gm_spiffe_parse(id, strlen(id), &sid);
    if (*rc == 0 && strcmp(sid.trust_domain, c->provider->trust_domain) != 0)
        *rc = -EPERM;
    else if (*rc == 0 && c->n >= c->o.max_identities)
        *rc = -ENOSPC;
    if (*rc < 0)
        return NULL;
    e = gm_xcalloc(1, sizeof(*e));
    e->cache = c;
    snprintf(e->id, sizeof(e->id), "%s", id);
    *pp = e;
    c->n++;
    return e;
}

static int entry_result(struct cache_entry *e, int64_t now, struct gm_cert **out)
{
    if (entry_usable(e, now)) {
        *out = gm_cert_ref(e->cert);
        return 0;
    }
    if (e->req != NULL)
        return -EAGAIN;
    return e->last_error ? e->last_error : -EIO;
}

int gm_cert_cache_get(struct gm_cert_cache *c, const char *spiffe_id, struct gm_cert **out)
{
    struct cache_entry *e;
    int rc = 0;

    *out = NULL;
    if (spiffe_id == NULL || strlen(spiffe_id) >= GM_SPIFFE_ID_MAX)
        return -EINVAL;
    if ((e = entry_get(c, spiffe_id, &rc)) == NULL)
        return rc;
    c->busy++;
    c->now = c->o.clock(c->o.clock_arg);
    if (!entry_usable(e, c->now) && e->req == NULL && (e->last_error == 0 || c->now >= e->due))
        entry_issue(e, c->now);
    rc = entry_result(e, c->now, out);
    c->busy--;
    return rc;
}

void gm_cert_cache_forget(struct gm_cert_cache *c, const char *spiffe_id)
{
    struct cache_entry **pp, *e;

    if (spiffe_id == NULL || strlen(spiffe_id) >= GM_SPIFFE_ID_MAX)
        return;
    pp = entry_slot(c, spiffe_id);
    if ((e = *pp) == NULL)
        return;
    *pp = e->next;
    c->n--;
    entry_free(e);
}

int64_t gm_cert_cache_tick(struct gm_cert_cache *c, int64_t now)
{
    int64_t next = INT64_MAX;

    c->busy++;
    c->now = now;
    for (size_t b = 0; b < CACHE_BUCKETS; b++) {
        for (struct cache_entry *e = c->buckets[b]; e != NULL; e = e->next) {
            if (e->req == NULL && now >= e->due)
                entry_issue(e, now);
            if (e->req == NULL && e->due < next)
                next = e->due;
        }
    }
    c->busy--;
    return next;
}

/* ---- states for /config_dump ---- */

static json_t *json_time(int64_t t)
{
    char buf[32];

    return gm_fmt_rfc3339(buf, sizeof(buf), t) ? json_string(buf) : json_null();
}

static const char *entry_state(const struct cache_entry *e, int64_t now)
{
    if (e->cert == NULL)
        return "initializing";
    if (now >= e->cert->not_after)
        return "expired";
    if (now >= half_life(e->cert))
        return "refreshing";
    return "valid";
}

static json_t *entry_json(const struct cache_entry *e, int64_t now)
{
    json_t *o = json_object();

    json_object_set_new(o, "identity", json_string(e->id));
    json_object_set_new(o, "state", json_string(entry_state(e, now)));
    if (e->cert != NULL) {
        char issuer[256] = "";
        X509_NAME_oneline(X509_get_issuer_name(e->cert->leaf), issuer, sizeof(issuer));
        json_object_set_new(o, "serial", json_string(e->cert->serial));
        json_object_set_new(o, "issuer", json_string(issuer));
        json_object_set_new(o, "not_before", json_time(e->cert->not_before));
        json_object_set_new(o, "not_after", json_time(e->cert->not_after));
        json_object_set_new(o, "refresh_at", json_time(half_life(e->cert)));
    }
    if (e->last_error != 0) {
        json_object_set_new(o, "error", json_string(strerror(-e->last_error)));
        json_object_set_new(o, "next_attempt", json_time(e->due));
    }
    return o;
}

static int entry_cmp(const void *a, const void *b)
{
    const struct cache_entry *x = *(const struct cache_entry *const *)a;
    const struct cache_entry *y = *(const struct cache_entry *const *)b;

    return strcmp(x->id, y->id);
}

json_t *gm_cert_cache_states(struct gm_cert_cache *c)
{
    struct cache_entry **all = gm_xcalloc(c->n + 1, sizeof(*all));
    int64_t now = c->o.clock(c->o.clock_arg);
    json_t *arr = json_array();
    size_t n = 0;

    for (size_t b = 0; b < CACHE_BUCKETS; b++)
        for (struct cache_entry *e = c->buckets[b]; e != NULL; e = e->next)
            all[n++] = e;
    qsort(all, n, sizeof(*all), entry_cmp);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, entry_json(all[i], now));
    free(all);
    return arr;
}
