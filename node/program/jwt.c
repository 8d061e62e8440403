/* jwt.c -- compact JWS verification for HS256 and RS256 on OpenSSL (see jwt.h).
 *
 * Order of the checks, and why:
 *   1. length and shape (three parts, header and payload non-empty, all strict
 *      base64url) -- cheap, and no attacker-chosen size reaches an allocation;
 *   2. the header, the only unauthenticated JSON we parse: small, at most
 *      HEADER_MAX_MEMBERS members, no duplicate names (two "alg" members read one way
 *      here and another way by the issuer's library would reopen algorithm confusion),
 *      "alg" exactly the configured one, no "crit" (RFC 7515 4.1.11: we implement no
 *      extension, so a token that requires one must fail);
 *   3. the signature over the ASCII "header.payload" (HMAC compared in constant time);
 *   4. the payload, now authenticated: a JSON object, then exp/nbf/iss/aud.
 * base64url is decoded here rather than in base64.c: that one is the padded standard
 * alphabet Engine.IO needs, on the per-message path; this one is strict too (no
 * padding, unused bits zero) so a signature has exactly one textual form.
 */
#include "jwt.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "base_alloc.h"

#define HEADER_MAX_MEMBERS 32 /* real headers carry 2 to 5 */
#define RSA_MIN_BITS 2048     /* RFC 7518 3.3 */
#define HS256_LEN 32          /* bytes of an HMAC-SHA256 */

struct app_jwt {
    app_jwt_alg_t alg;
    unsigned char *secret; /* HS256 */
    size_t secret_len;
    EVP_PKEY *pkey; /* RS256 */
    char *issuer;
    char *audience;
    unsigned leeway_s;
};

/* clang-format off */
static const char *const reasons[APP_JWT_ERR_COUNT] = {
    [APP_JWT_OK] = "ok",
    [APP_JWT_MALFORMED] = "malformed token",
    [APP_JWT_TOO_LONG] = "token too long",
    [APP_JWT_ALG] = "algorithm not allowed",
    [APP_JWT_HEADER] = "unsupported token header",
    [APP_JWT_SIGNATURE] = "bad signature",
    [APP_JWT_EXPIRED] = "expired",
    [APP_JWT_NOT_YET_VALID] = "not yet valid",
    [APP_JWT_ISSUER] = "wrong issuer",
    [APP_JWT_AUDIENCE] = "wrong audience",
    [APP_JWT_CLAIM] = "invalid claim",
    [APP_JWT_INTERNAL] = "internal error",
};

static const char *const alg_names[] = {
    [APP_JWT_HS256] = "HS256",
    [APP_JWT_RS256] = "RS256",
};

/* Value + 1 of each base64url character, 0 for anything else ('=' included). */
static const unsigned char b64url_val[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};
/* clang-format on */

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Strict base64url without padding: n % 4 != 1, every character in the alphabet, the
 * unused low bits of the last character zero. out needs n * 3 / 4 bytes. -1 if bad. */
static int b64url_decode(const char *in, size_t n, unsigned char *out, size_t *outlen)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;

    if (n % 4 == 1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v = b64url_val[(unsigned char)in[i]];

        if (v == 0)
            return -1;
        acc = (acc << 6) | (v - 1);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* leftover bits must be zero: one encoding per byte string */
        return -1;
    *outlen = o;
    return 0;
}

/* Parses a decoded part (len bytes at buf, NUL-terminated); NULL unless it is a JSON
 * object. The text must not hold a NUL: cJSON would stop there and accept what
 * follows unread. */
static cJSON *parse_part(const unsigned char *buf, size_t len)
{
    const char *end = NULL;
    cJSON *obj;

    if (memchr(buf, '\0', len) != NULL)
        return NULL;
    obj = cJSON_ParseWithOpts((const char *)buf, &end, 1);
    if (obj != NULL && !cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        obj = NULL;
    }
    return obj;
}

/* The header's verdict: APP_JWT_OK when it names our algorithm and nothing else we
 * would have to understand. */
static app_jwt_err_t check_header(const app_jwt_t *jwt, const cJSON *h)
{
    const cJSON *alg = NULL;
    size_t n = 0;

    for (const cJSON *m = h->child; m != NULL; m = m->next) {
        if (++n > HEADER_MAX_MEMBERS)
            return APP_JWT_MALFORMED;
        for (const cJSON *p = h->child; p != m; p = p->next) {
            if (strcmp(p->string, m->string) == 0)
                return APP_JWT_MALFORMED;
        }
        if (strcmp(m->string, "alg") == 0)
            alg = m;
        else if (strcmp(m->string, "crit") == 0)
            return APP_JWT_HEADER;
    }
    if (!cJSON_IsString(alg) || strcmp(alg->valuestring, alg_names[jwt->alg]) != 0)
        return APP_JWT_ALG;
    return APP_JWT_OK;
}

static app_jwt_err_t check_signature(const app_jwt_t *jwt, const char *msg, size_t msglen,
                                     const unsigned char *sig, size_t siglen)
{
    if (jwt->alg == APP_JWT_HS256) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned maclen = 0;

        if (siglen != HS256_LEN)
            return APP_JWT_SIGNATURE;
        if (HMAC(EVP_sha256(), jwt->secret, (int)jwt->secret_len, (const unsigned char *)msg,
                 msglen, mac, &maclen) == NULL ||
            maclen != HS256_LEN) {
            ERR_clear_error();
            return APP_JWT_INTERNAL;
        }
        return CRYPTO_memcmp(mac, sig, HS256_LEN) == 0 ? APP_JWT_OK : APP_JWT_SIGNATURE;
    }

    EVP_MD_CTX *ctx;
    app_jwt_err_t rc;

    if (siglen != (size_t)EVP_PKEY_get_size(jwt->pkey))
        return APP_JWT_SIGNATURE;
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, jwt->pkey) != 1)
        rc = APP_JWT_INTERNAL;
    else if (EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)msg, msglen) == 1)
        rc = APP_JWT_OK;
    else
        rc = APP_JWT_SIGNATURE;
    EVP_MD_CTX_free(ctx);
    /* A failed verification queues errors; the thread's queue is shared with lws. */
    ERR_clear_error();
    return rc;
}

/* A NumericDate claim (RFC 7519 2): absent is fine, anything but a finite number is
 * not. */
static int numeric_claim(const cJSON *claims, const char *name, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(claims, name);

    if (v == NULL)
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return -1;
    *out = v->valuedouble;
    return 1;
}

static app_jwt_err_t check_claims(const app_jwt_t *jwt, const cJSON *claims, int64_t now)
{
    double t, lo = (double)now - jwt->leeway_s, hi = (double)now + jwt->leeway_s;
    int has;

    if ((has = numeric_claim(claims, "exp", &t)) < 0)
        return APP_JWT_CLAIM;
    if (has && t <= lo) /* RFC 7519 4.1.4: valid strictly before exp */
        return APP_JWT_EXPIRED;
    if ((has = numeric_claim(claims, "nbf", &t)) < 0)
        return APP_JWT_CLAIM;
    if (has && t > hi)
        return APP_JWT_NOT_YET_VALID;

    if (jwt->issuer != NULL) {
        const cJSON *iss = cJSON_GetObjectItemCaseSensitive(claims, "iss");

        if (iss != NULL && !cJSON_IsString(iss))
            return APP_JWT_CLAIM;
        if (iss == NULL || strcmp(iss->valuestring, jwt->issuer) != 0)
            return APP_JWT_ISSUER;
    }
    if (jwt->audience != NULL) {
        const cJSON *aud = cJSON_GetObjectItemCaseSensitive(claims, "aud"), *a;

        if (cJSON_IsString(aud))
            return strcmp(aud->valuestring, jwt->audience) == 0 ? APP_JWT_OK : APP_JWT_AUDIENCE;
        if (aud != NULL && !cJSON_IsArray(aud))
            return APP_JWT_CLAIM;
        cJSON_ArrayForEach(a, aud)
        {
            if (cJSON_IsString(a) && strcmp(a->valuestring, jwt->audience) == 0)
                return APP_JWT_OK;
        }
        return APP_JWT_AUDIENCE;
    }
    return APP_JWT_OK;
}

/* ---------------------------------------------------------------- public */

static int load_rsa(app_jwt_t *jwt, const void *pem, size_t len, char *err, size_t errlen)
{
    BIO *bio;
    int bits;

    if (len == 0 || len > INT_MAX) {
        errf(err, errlen, "the public key is empty");
        return -1;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    jwt->pkey = bio != NULL ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    ERR_clear_error();
    if (jwt->pkey == NULL) {
        /* The usual mistake deserves its own answer (and the key stays unquoted). */
        if (memmem(pem, len, "PRIVATE KEY-----", 16) != NULL)
            errf(err, errlen,
                 "this is a private key: give the public key instead "
                 "(openssl pkey -in KEY -pubout)");
        else
            errf(err, errlen, "not a PEM public key (expected -----BEGIN PUBLIC KEY-----)");
        return -1;
    }
    if (EVP_PKEY_get_base_id(jwt->pkey) != EVP_PKEY_RSA) {
        errf(err, errlen, "the public key is not an RSA key (RS256 needs one)");
        return -1;
    }
    bits = EVP_PKEY_get_bits(jwt->pkey);
    if (bits < RSA_MIN_BITS) {
        errf(err, errlen, "RSA key of %d bits: at least %d are required", bits, RSA_MIN_BITS);
        return -1;
    }
    return 0;
}

app_jwt_t *app_jwt_new(const app_jwt_config_t *cfg, char *err, size_t errlen)
{
    app_jwt_t *jwt;

    if (cfg->alg != APP_JWT_HS256 && cfg->alg != APP_JWT_RS256) {
        errf(err, errlen, "unknown algorithm");
        return NULL;
    }
    jwt = base_calloc(1, sizeof(*jwt));
    jwt->alg = cfg->alg;
    jwt->leeway_s = cfg->leeway_s;
    jwt->issuer = cfg->issuer != NULL ? base_strdup(cfg->issuer) : NULL;
    jwt->audience = cfg->audience != NULL ? base_strdup(cfg->audience) : NULL;
    if (cfg->alg == APP_JWT_HS256) {
        if (cfg->key == NULL || cfg->key_len == 0 || cfg->key_len > INT_MAX) {
            errf(err, errlen, "the HS256 secret is empty");
            app_jwt_free(jwt);
            return NULL;
        }
        jwt->secret = base_malloc(cfg->key_len);
        memcpy(jwt->secret, cfg->key, cfg->key_len);
        jwt->secret_len = cfg->key_len;
    } else if (load_rsa(jwt, cfg->key, cfg->key_len, err, errlen) != 0) {
        app_jwt_free(jwt);
        return NULL;
    }
    return jwt;
}

void app_jwt_free(app_jwt_t *jwt)
{
    if (jwt == NULL)
        return;
    if (jwt->secret != NULL)
        OPENSSL_cleanse(jwt->secret, jwt->secret_len);
    base_free(jwt->secret);
    EVP_PKEY_free(jwt->pkey);
    base_free(jwt->issuer);
    base_free(jwt->audience);
    base_free(jwt);
}

app_jwt_alg_t app_jwt_alg(const app_jwt_t *jwt)
{
    return jwt->alg;
}

const char *app_jwt_alg_name(app_jwt_alg_t alg)
{
    return (unsigned)alg < sizeof(alg_names) / sizeof(alg_names[0]) ? alg_names[alg] : "?";
}

const char *app_jwt_reason(app_jwt_err_t why)
{
    return (unsigned)why < APP_JWT_ERR_COUNT ? reasons[why] : "?";
}

cJSON *app_jwt_verify(const app_jwt_t *jwt, const char *token, size_t len, int64_t now,
                      app_jwt_err_t *why)
{
    const char *dot1, *dot2, *payload, *sig;
    size_t hlen, plen, slen, hdec, pdec, sdec;
    unsigned char *buf, *hbuf, *pbuf, *sbuf;
    cJSON *header = NULL, *claims = NULL;
    app_jwt_err_t rc = APP_JWT_OK;

    if (len > APP_JWT_MAX_TOKEN) {
        rc = APP_JWT_TOO_LONG;
        goto out;
    }
    dot1 = len > 0 ? memchr(token, '.', len) : NULL;
    dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL) {
        rc = APP_JWT_MALFORMED;
        goto out;
    }
    payload = dot1 + 1;
    sig = dot2 + 1;
    hlen = (size_t)(dot1 - token);
    plen = (size_t)(dot2 - payload);
    slen = len - (size_t)(sig - token);
    if (hlen == 0 || plen == 0) {
        rc = APP_JWT_MALFORMED;
        goto out;
    }

    /* One buffer for the decoded parts, each NUL-terminated: decoding shrinks by a
     * quarter, so the three and their NULs fit in len + 3 bytes. */
    buf = base_malloc(len + 3);
    hbuf = buf;
    pbuf = sbuf = NULL;
    if (b64url_decode(token, hlen, hbuf, &hdec) == 0) {
        hbuf[hdec] = '\0';
        pbuf = hbuf + hdec + 1;
        if (b64url_decode(payload, plen, pbuf, &pdec) == 0) {
            pbuf[pdec] = '\0';
            sbuf = pbuf + pdec + 1;
            if (b64url_decode(sig, slen, sbuf, &sdec) != 0)
                sbuf = NULL;
        }
    }

    if (sbuf == NULL || (header = parse_part(hbuf, hdec)) == NULL) {
        rc = APP_JWT_MALFORMED;
    } else if ((rc = check_header(jwt, header)) != APP_JWT_OK) {
        /* rc says why; checked before the signature, so that an unsigned token (empty
         * third part) is refused for its "alg" */
    } else if ((rc = check_signature(jwt, token, (size_t)(dot2 - token), sbuf, sdec)) !=
               APP_JWT_OK) {
        /* rc says why */
    } else if ((claims = parse_part(pbuf, pdec)) == NULL) {
        rc = APP_JWT_MALFORMED;
    } else if ((rc = check_claims(jwt, claims, now)) != APP_JWT_OK) {
        cJSON_Delete(claims);
        claims = NULL;
    }
    cJSON_Delete(header);
    base_free(buf);
out:
    if (why != NULL)
        *why = claims != NULL ? APP_JWT_OK : rc;
    return claims;
}
