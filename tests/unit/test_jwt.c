/* test_jwt.c -- node/program/jwt.c: HS256 and RS256 verification, algorithm confusion, time
 * claims at their edges (a fixed "now"), issuer/audience, malformed tokens, key loading.
 *
 * Tokens are built here with OpenSSL directly (HMAC, EVP_DigestSign) from JSON text,
 * so a test can forge exactly the header or signature it needs; the RSA keys are
 * generated at run time (nothing secret is committed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "base_alloc.h"
#include "config.h"
#include "jwt.h"

#define NOW 1700000000LL /* the fixed "now" of every verification below */
#define SECRET "correct horse battery staple, 32+ bytes long"

static EVP_PKEY *rsa_a, *rsa_b; /* two 2048-bit pairs, made once */
static char *pem_a;             /* rsa_a's public key, PEM SubjectPublicKeyInfo */

/* ---------------------------------------------------------------- token making */

/* base64url without padding, malloc'd. */
static char *b64url(const void *data, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    int len = EVP_EncodeBlock((unsigned char *)out, data, (int)n);

    for (int i = 0; i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    return out;
}

/* "b64(header).b64(payload)", malloc'd. */
static char *signing_input(const char *header, const char *payload)
{
    char *h = b64url(header, strlen(header)), *p = b64url(payload, strlen(payload));
    char *out = malloc(strlen(h) + strlen(p) + 2);

    sprintf(out, "%s.%s", h, p);
    free(h);
    free(p);
    return out;
}

static char *join_sig(char *input, const unsigned char *sig, size_t siglen)
{
    char *s = b64url(sig, siglen);
    char *out = malloc(strlen(input) + strlen(s) + 2);

    sprintf(out, "%s.%s", input, s);
    free(input);
    free(s);
    return out;
}

/* A token whose signature is HMAC-SHA256 with key, whatever the header says. */
static char *hs_token(const char *header, const char *payload, const void *key, size_t keylen)
{
    char *input = signing_input(header, payload);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;

    assert_non_null(
        HMAC(EVP_sha256(), key, (int)keylen, (unsigned char *)input, strlen(input), mac, &maclen));
    return join_sig(input, mac, maclen);
}

static char *hs(const char *payload)
{
    return hs_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, SECRET, strlen(SECRET));
}

/* A token whose signature is RSASSA-PKCS1-v1_5 SHA-256 with key. */
static char *rs_token(const char *header, const char *payload, EVP_PKEY *key)
{
    char *input = signing_input(header, payload);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char sig[1024];
    size_t siglen = sizeof(sig);

    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)input, strlen(input)), 1);
    EVP_MD_CTX_free(ctx);
    return join_sig(input, sig, siglen);
}

static char *rs(const char *payload, EVP_PKEY *key)
{
    return rs_token("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", payload, key);
}

static char *public_pem(EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out;
    long len;

    assert_int_equal(PEM_write_bio_PUBKEY(bio, key), 1);
    len = BIO_get_mem_data(bio, &data);
    out = malloc((size_t)len + 1);
    memcpy(out, data, (size_t)len);
    out[len] = '\0';
    BIO_free(bio);
    return out;
}

static char *private_pem(EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out;
    long len;

    assert_int_equal(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL), 1);
    len = BIO_get_mem_data(bio, &data);
    out = malloc((size_t)len + 1);
    memcpy(out, data, (size_t)len);
    out[len] = '\0';
    BIO_free(bio);
    return out;
}

/* ---------------------------------------------------------------- verifiers */

static app_jwt_t *hs_verifier(const char *iss, const char *aud, unsigned leeway)
{
    app_jwt_config_t c = {APP_JWT_HS256, SECRET, strlen(SECRET), iss, aud, leeway};
    char err[200] = "";
    app_jwt_t *v = app_jwt_new(&c, err, sizeof(err));

    assert_non_null(v);
    assert_int_equal(app_jwt_alg(v), APP_JWT_HS256);
    return v;
}

static app_jwt_t *rs_verifier(const char *pem)
{
    app_jwt_config_t c = {APP_JWT_RS256, pem, strlen(pem), NULL, NULL, 30};
    char err[200] = "";
    app_jwt_t *v = app_jwt_new(&c, err, sizeof(err));

    if (v == NULL)
        fail_msg("RS256 verifier: %s", err);
    return v;
}

/* The verdict on token (freed here); the claims are checked then dropped. */
static app_jwt_err_t verdict_at(const app_jwt_t *v, char *token, long long now)
{
    app_jwt_err_t why = APP_JWT_ERR_COUNT;
    cJSON *claims = app_jwt_verify(v, token, strlen(token), now, &why);

    if (claims != NULL) {
        assert_int_equal(why, APP_JWT_OK);
        assert_true(cJSON_IsObject(claims));
        cJSON_Delete(claims);
    } else {
        assert_int_not_equal(why, APP_JWT_OK);
        assert_true(why < APP_JWT_ERR_COUNT);
    }
    free(token);
    return why;
}

static app_jwt_err_t verdict(const app_jwt_t *v, char *token)
{
    return verdict_at(v, token, NOW);
}

/* ---------------------------------------------------------------- HS256 */

static void test_hs256_valid(void **state)
{
    app_jwt_t *v = hs_verifier(NULL, NULL, 30);
    char *t = hs("{\"sub\":\"ada\",\"rooms\":[\"r1\"],\"exp\":1700000100}");
    app_jwt_err_t why = APP_JWT_ERR_COUNT;
    cJSON *claims = app_jwt_verify(v, t, strlen(t), NOW, &why);

    assert_non_null(claims);
    assert_int_equal(why, APP_JWT_OK);
    assert_string_equal(cJSON_GetObjectItem(claims, "sub")->valuestring, "ada");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(claims, "rooms"), 0)->valuestring,
                        "r1");
    cJSON_Delete(claims);
    /* why may be NULL; the length bounds the read (no NUL needed after the token) */
    {
        size_t n = strlen(t);
        char *unterminated = malloc(n + 3);

        memcpy(unterminated, t, n);
        memcpy(unterminated + n, "xyz", 3);
        claims = app_jwt_verify(v, unterminated, n, NOW, NULL);
        assert_non_null(claims);
        cJSON_Delete(claims);
        assert_null(app_jwt_verify(v, unterminated, n + 3, NOW, NULL));
        free(unterminated);
    }
    free(t);
    app_jwt_free(v);
}

static void test_hs256_wrong_secret(void **state)
{
    app_jwt_t *v = hs_verifier(NULL, NULL, 30);

    assert_int_equal(verdict(v, hs_token("{\"alg\":\"HS256\"}", "{}", "other", 5)),
                     APP_JWT_SIGNATURE);
    /* a secret that is a prefix of ours is another secret */
    assert_int_equal(verdict(v, hs_token("{\"alg\":\"HS256\"}", "{}", SECRET, strlen(SECRET) - 1)),
                     APP_JWT_SIGNATURE);
    app_jwt_free(v);
}

static void test_hs256_tampered(void **state)
{
    app_jwt_t *v = hs_verifier(NULL, NULL, 30);
    char *good = hs("{\"sub\":\"ada\",\"admin\":false}");
    char *other = hs("{\"sub\":\"ada\",\"admin\":true}");
    char *t = malloc(strlen(good) + strlen(other) + 1);
    char *dot1 = strchr(good, '.'), *dot2 = strrchr(good, '.');
    char *odot1 = strchr(other, '.'), *odot2 = strrchr(other, '.');

    /* other's payload under good's header and signature */
    sprintf(t, "%.*s%.*s%s", (int)(dot1 - good + 1), good, (int)(odot2 - odot1 - 1), odot1 + 1,
            dot2);
    assert_int_equal(verdict(v, t), APP_JWT_SIGNATURE);

    /* one flipped bit in the signature */
    t = strdup(good);
    t[strlen(t) - 2] = t[strlen(t) - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(verdict(v, t), APP_JWT_SIGNATURE);

    /* signature dropped, or truncated (to 30 bytes, still canonical base64url) */
    t = strdup(good);
    strrchr(t, '.')[1] = '\0';
    assert_int_equal(verdict(v, t), APP_JWT_SIGNATURE);
    t = strdup(good);
    t[strlen(t) - 3] = '\0';
    assert_int_equal(verdict(v, t), APP_JWT_SIGNATURE);

    assert_int_equal(verdict(v, good), APP_JWT_OK);
    free(other);
    app_jwt_free(v);
}

/* ---------------------------------------------------------------- algorithms */

static void test_alg_none(void **state)
{
    app_jwt_t *v = hs_verifier(NULL, NULL, 30);
    char *input = signing_input("{\"alg\":\"none\"}", "{\"sub\":\"mallory\"}");
    char *t = malloc(strlen(input) + 2);

    sprintf(t, "%s.", input); /* the unsecured JWS form: empty signature */
    assert_int_equal(verdict(v, t), APP_JWT_ALG);
    /* ...also with a real HMAC appended, and in other spellings */
    assert_int_equal(verdict(v, hs_token("{\"alg\":\"none\"}", "{}", SECRET, strlen(SECRET))),
                     APP_JWT_ALG);
    assert_int_equal(verdict(v, hs_token("{\"alg\":\"None\"}", "{}", SECRET, strlen(SECRET))),
                     APP_JWT_ALG);
    assert_int_equal(verdict(v, hs_token("{\"alg\":\"hs256\"}", "{}", SECRET, strlen(SECRET))),
                     APP_JWT_ALG);
    assert_int_equal(verdict(v, hs_token("{\"typ\":\"JWT\"}", "{}", SECRET, strlen(SECRET))),
                     APP_JWT_ALG);
    assert_int_equal(verdict(v, hs_token("{\"alg\":null}", "{}", SECRET, strlen(SECRET))),
                     APP_JWT_ALG);
    assert_int_equal(verdict(v, hs_token("{\"alg\":[\"HS256\"]}", "{}", SECRET, strlen(SECRET))),
                     APP_JWT_ALG);
    free(input);
    app_jwt_free(v);
}

static void test_alg_cross(void **state)
{
    app_jwt_t *h = hs_verifier(NULL, NULL, 30), *r = rs_verifier(pem_a);

    assert_int_equal(verdict(h, rs("{}", rsa_a)), APP_JWT_ALG);
    assert_int_equal(verdict(r, hs("{}")), APP_JWT_ALG);
    assert_int_equal(verdict(r, rs("{}", rsa_a)), APP_JWT_OK);
    assert_int_equal(verdict(h, hs("{}")), APP_JWT_OK);
    app_jwt_free(h);
    app_jwt_free(r);
}

/* The classic confusion: the attacker knows the RS256 public key and signs an HS256
 * token with it as the HMAC secret. */
static void test_alg_confusion(void **state)
{
    app_jwt_t *r = rs_verifier(pem_a);

    assert_int_equal(
        verdict(r, hs_token("{\"alg\":\"HS256\"}", "{\"sub\":\"root\"}", pem_a, strlen(pem_a))),
        APP_JWT_ALG);
    /* ...and the same HMAC under a header claiming RS256 */
    assert_int_equal(
        verdict(r, hs_token("{\"alg\":\"RS256\"}", "{\"sub\":\"root\"}", pem_a, strlen(pem_a))),
        APP_JWT_SIGNATURE);
    app_jwt_free(r);
}

/* A header the verifier could read differently from the issuer, or that asks for an
 * extension, is refused. */
static void test_header_rules(void **state)
{
    app_jwt_t *v = hs_verifier(NULL, NULL, 30);
    char many[2048] = "{\"alg\":\"HS256\"";

    assert_int_equal(
        verdict(v, hs_token("{\"alg\":\"HS256\",\"alg\":\"none\"}", "{}", SECRET, strlen(SECRET))),
        APP_JWT_MALFORMED);
    assert_int_equal(
        verdict(v, hs_token("{\"alg\":\"none\",\"alg\":\"HS256\"}", "{}", SECRET, strlen(SECRET))),
        APP_JWT_MALFORMED);
    assert_int_equal(verdict(v, hs_token("{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", "{}",
                                         SECRET, strlen(SECRET))),
                     APP_JWT_HEADER);
    assert_int_equal(verdict(v, hs_token("{\"alg\":\"HS256\",\"kid\":\"k1\",\"typ\":\"JWT\"}", "{}",
                                         SECRET, strlen(SECRET))),
                     APP_JWT_OK);
    for (int i = 0; i < 40; i++)
        sprintf(many + strlen(many), ",\"m%d\":%d", i, i);
    strcat(many, "}");
    assert_int_equal(verdict(v, hs_token(many, "{}", SECRET, strlen(SECRET))), APP_JWT_MALFORMED);
    app_jwt_free(v);
}

/* ---------------------------------------------------------------- time claims */

static char *hs_claim(const char *name, long long value)
{
    char payload[128];

    snprintf(payload, sizeof(payload), "{\"%s\":%lld}", name, value);
    return hs(payload);
}

static void test_exp_nbf_edges(void **state)
{
    app_jwt_t *v = hs_verifier(NULL, NULL, 30), *strict = hs_verifier(NULL, NULL, 0);

    /* exp: valid strictly before exp + leeway */
    assert_int_equal(verdict(v, hs_claim("exp", NOW - 30)), APP_JWT_EXPIRED);
    assert_int_equal(verdict(v, hs_claim("exp", NOW - 29)), APP_JWT_OK);
    assert_int_equal(verdict(v, hs_claim("exp", NOW - 100000)), APP_JWT_EXPIRED);
    assert_int_equal(verdict(strict, hs_claim("exp", NOW)), APP_JWT_EXPIRED);
    assert_int_equal(verdict(strict, hs_claim("exp", NOW + 1)), APP_JWT_OK);
    /* nbf: valid from nbf - leeway on */
    assert_int_equal(verdict(v, hs_claim("nbf", NOW + 30)), APP_JWT_OK);
    assert_int_equal(verdict(v, hs_claim("nbf", NOW + 31)), APP_JWT_NOT_YET_VALID);
    assert_int_equal(verdict(strict, hs_claim("nbf", NOW)), APP_JWT_OK);
    assert_int_equal(verdict(strict, hs_claim("nbf", NOW + 1)), APP_JWT_NOT_YET_VALID);
    /* the same token over time */
    assert_int_equal(verdict_at(strict, hs_claim("exp", NOW), NOW - 1), APP_JWT_OK);
    assert_int_equal(verdict_at(strict, hs_claim("exp", NOW), NOW), APP_JWT_EXPIRED);
    /* fractional NumericDate, absent claims, wrong types */
    assert_int_equal(verdict(strict, hs("{\"exp\":1700000000.5}")), APP_JWT_OK);
    assert_int_equal(verdict(strict, hs("{}")), APP_JWT_OK);
    assert_int_equal(verdict(v, hs("{\"exp\":\"1800000000\"}")), APP_JWT_CLAIM);
    assert_int_equal(verdict(v, hs("{\"nbf\":null}")), APP_JWT_CLAIM);
    assert_int_equal(verdict(v, hs("{\"exp\":1e999}")), APP_JWT_CLAIM);
    assert_int_equal(verdict(v, hs("{\"exp\":1e300,\"nbf\":-1e300}")), APP_JWT_OK);
    app_jwt_free(v);
    app_jwt_free(strict);
}

static void test_issuer_audience(void **state)
{
    app_jwt_t *v = hs_verifier("https://auth.example", "sockeye", 30);
    app_jwt_t *open = hs_verifier(NULL, NULL, 30);

    assert_int_equal(verdict(v, hs("{\"iss\":\"https://auth.example\",\"aud\":\"sockeye\"}")),
                     APP_JWT_OK);
    assert_int_equal(
        verdict(v, hs("{\"iss\":\"https://auth.example\",\"aud\":[\"api\",\"sockeye\"]}")),
        APP_JWT_OK);
    assert_int_equal(verdict(v, hs("{\"iss\":\"https://auth.example\",\"aud\":[\"api\"]}")),
                     APP_JWT_AUDIENCE);
    assert_int_equal(verdict(v, hs("{\"iss\":\"https://auth.example\",\"aud\":[]}")),
                     APP_JWT_AUDIENCE);
    assert_int_equal(verdict(v, hs("{\"iss\":\"https://auth.example\",\"aud\":\"sockeyes\"}")),
                     APP_JWT_AUDIENCE);
    assert_int_equal(verdict(v, hs("{\"iss\":\"https://auth.example\"}")), APP_JWT_AUDIENCE);
    assert_int_equal(verdict(v, hs("{\"iss\":\"https://auth.example\",\"aud\":7}")), APP_JWT_CLAIM);
    assert_int_equal(verdict(v, hs("{\"iss\":\"https://evil.example\",\"aud\":\"sockeye\"}")),
                     APP_JWT_ISSUER);
    assert_int_equal(verdict(v, hs("{\"aud\":\"sockeye\"}")), APP_JWT_ISSUER);
    assert_int_equal(verdict(v, hs("{\"iss\":1,\"aud\":\"sockeye\"}")), APP_JWT_CLAIM);
    /* unconfigured checks ignore the claims */
    assert_int_equal(verdict(open, hs("{\"iss\":\"anyone\",\"aud\":42}")), APP_JWT_OK);
    app_jwt_free(v);
    app_jwt_free(open);
}

/* ---------------------------------------------------------------- malformed */

static app_jwt_err_t verdict_text(const app_jwt_t *v, const char *text)
{
    return verdict(v, strdup(text));
}

static void test_malformed(void **state)
{
    app_jwt_t *v = hs_verifier(NULL, NULL, 30);
    char *good = hs("{\"sub\":\"ada\"}"), *t;
    size_t glen = strlen(good);
    char *h = b64url("{\"alg\":\"HS256\"}", 15);

    assert_int_equal(verdict_text(v, ""), APP_JWT_MALFORMED);
    assert_int_equal(verdict_text(v, "."), APP_JWT_MALFORMED);
    assert_int_equal(verdict_text(v, ".."), APP_JWT_MALFORMED);
    assert_int_equal(verdict_text(v, "..."), APP_JWT_MALFORMED);
    assert_int_equal(verdict_text(v, "abc"), APP_JWT_MALFORMED);
    assert_int_equal(verdict_text(v, "abc.def"), APP_JWT_MALFORMED);
    assert_int_equal(verdict_text(v, "a.b.c.d"), APP_JWT_MALFORMED);
    /* 4 parts: a valid token with one more */
    t = malloc(glen + 3);
    sprintf(t, "%s.x", good);
    assert_int_equal(verdict(v, t), APP_JWT_MALFORMED);
    /* 2 parts: the signature dropped with its dot */
    t = strdup(good);
    *strrchr(t, '.') = '\0';
    assert_int_equal(verdict(v, t), APP_JWT_MALFORMED);
    /* empty header or payload */
    t = strdup(strchr(good, '.'));
    assert_int_equal(verdict(v, t), APP_JWT_MALFORMED);
    /* bad base64url: standard alphabet, padding, whitespace, length 4k+1, stray bits */
    assert_int_equal(verdict_text(v, "eyJhbGciOiJIUzI1NiJ9+.e30.AAAA"), APP_JWT_MALFORMED);
    assert_int_equal(verdict_text(v, "eyJhbGciOiJIUzI1NiJ9.e30=.AAAA"), APP_JWT_MALFORMED);
    assert_int_equal(verdict_text(v, "eyJhbGciOiJIUzI1NiJ9 .e30.AAAA"), APP_JWT_MALFORMED);
    assert_int_equal(verdict_text(v, "eyJhbGciOiJIUzI1NiJ9A.e30.AAAA"), APP_JWT_MALFORMED);
    assert_int_equal(verdict_text(v, "eyJhbGciOiJIUzI1NiJ9.e31.AAAA"), APP_JWT_MALFORMED);
    /* the signature part with non-zero unused bits: same bytes, second spelling */
    t = strdup(good);
    {
        char *last = t + glen - 1;
        const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        int val = (int)(strchr(alpha, *last) - alpha);

        /* 32 bytes -> 43 characters: the last one carries 4 bits and 2 unused ones */
        assert_int_equal(strlen(strrchr(t, '.') + 1), 43);
        *last = alpha[val | 1];
    }
    assert_int_equal(verdict(v, t), APP_JWT_MALFORMED);
    /* header or payload not a JSON object (the payload ones correctly signed) */
    assert_int_equal(verdict(v, hs_token("[\"HS256\"]", "{}", SECRET, strlen(SECRET))),
                     APP_JWT_MALFORMED);
    assert_int_equal(verdict(v, hs_token("\"HS256\"", "{}", SECRET, strlen(SECRET))),
                     APP_JWT_MALFORMED);
    assert_int_equal(verdict(v, hs("[1,2]")), APP_JWT_MALFORMED);
    assert_int_equal(verdict(v, hs("42")), APP_JWT_MALFORMED);
    assert_int_equal(verdict(v, hs("null")), APP_JWT_MALFORMED);
    assert_int_equal(verdict(v, hs("{\"a\":1")), APP_JWT_MALFORMED);
    assert_int_equal(verdict(v, hs("{} {}")), APP_JWT_MALFORMED);
    assert_int_equal(verdict(v, hs("not json")), APP_JWT_MALFORMED);
    /* a NUL inside the JSON: cJSON would stop there and ignore the rest */
    {
        char *input, *p = b64url("{}\0{\"x\":1}", 10);

        input = malloc(strlen(h) + strlen(p) + 2);
        sprintf(input, "%s.%s", h, p);
        unsigned char mac[32];
        unsigned maclen;
        HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)input, strlen(input), mac,
             &maclen);
        assert_int_equal(verdict(v, join_sig(input, mac, maclen)), APP_JWT_MALFORMED);
        free(p);
    }
    assert_int_equal(verdict(v, good), APP_JWT_OK);
    free(h);
    app_jwt_free(v);
}

static void test_length_bound(void **state)
{
    app_jwt_t *v = hs_verifier(NULL, NULL, 30);
    char *payload = malloc(APP_JWT_MAX_TOKEN), *t;
    app_jwt_err_t why;
    size_t fill;

    /* the largest payload that still fits: the token is exactly APP_JWT_MAX_TOKEN */
    for (fill = 5000;; fill++) {
        snprintf(payload, APP_JWT_MAX_TOKEN, "{\"p\":\"%0*d\"}", (int)fill, 0);
        t = hs(payload);
        if (strlen(t) >= APP_JWT_MAX_TOKEN)
            break;
        free(t);
    }
    if (strlen(t) == APP_JWT_MAX_TOKEN) {
        assert_int_equal(verdict(v, t), APP_JWT_OK);
        snprintf(payload, APP_JWT_MAX_TOKEN, "{\"p\":\"%0*d\"}", (int)fill + 3, 0);
        t = hs(payload);
    }
    assert_true(strlen(t) > APP_JWT_MAX_TOKEN);
    assert_int_equal(verdict(v, t), APP_JWT_TOO_LONG);

    /* far too long: refused unread (this buffer is not even a token) */
    t = malloc(1 << 20);
    memset(t, 'A', 1 << 20);
    assert_null(app_jwt_verify(v, t, 1 << 20, NOW, &why));
    assert_int_equal(why, APP_JWT_TOO_LONG);
    free(t);
    free(payload);
    app_jwt_free(v);
}

/* ---------------------------------------------------------------- RS256 */

static void test_rs256(void **state)
{
    app_jwt_t *r = rs_verifier(pem_a);
    char *t = rs("{\"sub\":\"ada\",\"exp\":1700000100}", rsa_a);
    cJSON *claims = app_jwt_verify(r, t, strlen(t), NOW, NULL);

    assert_non_null(claims);
    assert_string_equal(cJSON_GetObjectItem(claims, "sub")->valuestring, "ada");
    cJSON_Delete(claims);
    free(t);
    assert_int_equal(app_jwt_alg(r), APP_JWT_RS256);
    assert_string_equal(app_jwt_alg_name(app_jwt_alg(r)), "RS256");
    /* another key pair's signature, an expired token, a flipped signature byte */
    assert_int_equal(verdict(r, rs("{\"sub\":\"ada\"}", rsa_b)), APP_JWT_SIGNATURE);
    assert_int_equal(verdict(r, rs("{\"exp\":1600000000}", rsa_a)), APP_JWT_EXPIRED);
    t = rs("{\"sub\":\"ada\"}", rsa_a);
    t[strlen(t) - 10] = t[strlen(t) - 10] == 'A' ? 'B' : 'A';
    assert_int_equal(verdict(r, t), APP_JWT_SIGNATURE);
    /* a signature of the wrong length never reaches OpenSSL */
    assert_int_equal(verdict(r, hs_token("{\"alg\":\"RS256\"}", "{}", "k", 1)), APP_JWT_SIGNATURE);
    app_jwt_free(r);
}

/* ---------------------------------------------------------------- key loading */

static void expect_new_fails(app_jwt_alg_t alg, const char *key, size_t len, const char *want)
{
    app_jwt_config_t c = {alg, key, len, NULL, NULL, 30};
    char err[200] = "";

    assert_null(app_jwt_new(&c, err, sizeof(err)));
    if (strstr(err, want) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    /* a key is never quoted back (a PEM body line, or the secret) */
    if (len > 40)
        assert_null(strstr(err, key + 30));
}

static void test_key_loading(void **state)
{
    EVP_PKEY *small = EVP_RSA_gen(1024), *ec = EVP_EC_gen("P-256");
    char *small_pem = public_pem(small), *ec_pem = public_pem(ec), *priv = private_pem(rsa_a);

    expect_new_fails(APP_JWT_HS256, "", 0, "empty");
    expect_new_fails(APP_JWT_HS256, NULL, 0, "empty");
    expect_new_fails(APP_JWT_RS256, "", 0, "empty");
    expect_new_fails(APP_JWT_RS256, "hello world, this is no key at all, really not", 47,
                     "not a PEM public key");
    expect_new_fails(APP_JWT_RS256, priv, strlen(priv), "private key");
    expect_new_fails(APP_JWT_RS256, ec_pem, strlen(ec_pem), "not an RSA key");
    expect_new_fails(APP_JWT_RS256, small_pem, strlen(small_pem), "1024 bits");
    /* a truncated PEM */
    expect_new_fails(APP_JWT_RS256, pem_a, strlen(pem_a) / 2, "not a PEM public key");
    {
        app_jwt_config_t c = {(app_jwt_alg_t)7, SECRET, strlen(SECRET), NULL, NULL, 0};
        char err[64];

        assert_null(app_jwt_new(&c, err, sizeof(err)));
    }
    app_jwt_free(NULL);
    free(small_pem);
    free(ec_pem);
    free(priv);
    EVP_PKEY_free(small);
    EVP_PKEY_free(ec);
}

static void test_reasons(void **state)
{
    for (int i = 0; i < APP_JWT_ERR_COUNT; i++) {
        const char *r = app_jwt_reason((app_jwt_err_t)i);

        assert_non_null(r);
        assert_true(strlen(r) > 1);
        for (int k = 0; k < i; k++)
            assert_string_not_equal(r, app_jwt_reason((app_jwt_err_t)k));
    }
    assert_string_equal(app_jwt_reason(APP_JWT_EXPIRED), "expired");
    assert_string_equal(app_jwt_reason(APP_JWT_SIGNATURE), "bad signature");
    assert_string_equal(app_jwt_reason(APP_JWT_ALG), "algorithm not allowed");
    assert_string_equal(app_jwt_reason(APP_JWT_MALFORMED), "malformed token");
    assert_string_equal(app_jwt_reason(APP_JWT_ERR_COUNT), "?");
    assert_string_equal(app_jwt_alg_name(APP_JWT_HS256), "HS256");
    assert_string_equal(app_jwt_alg_name((app_jwt_alg_t)9), "?");
}

/* ---------------------------------------------------------------- node configuration */

/* A file in a fresh temporary directory; the path is malloc'd. */
static char *temp_file(const char *content, size_t len)
{
    char dir[] = "/tmp/sockeye-jwt-XXXXXX", *path;
    FILE *fp;

    assert_non_null(mkdtemp(dir));
    path = malloc(strlen(dir) + 8);
    sprintf(path, "%s/key", dir);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(content, 1, len, fp), len);
    fclose(fp);
    return path;
}

static void remove_temp(char *path)
{
    unlink(path);
    *strrchr(path, '/') = '\0';
    rmdir(path);
    free(path);
}

static int argv_config(app_node_config_t *cfg, const char *flag, const char *value, char *err,
                       size_t errlen)
{
    char prog[] = "sockeye";
    char *argv[] = {prog, (char *)flag, (char *)value, NULL};

    app_node_config_init(cfg);
    return app_node_config_argv(cfg, 3, argv, err, errlen);
}

/* The flags build the verifier they name: the secret file's trailing newline is not
 * part of the secret, the public key file is read, and middlewares then run on
 * recovered sessions. */
static void test_node_config_auth(void **state)
{
    app_node_config_t cfg;
    app_jwt_t *jwt = (app_jwt_t *)&cfg; /* must be overwritten */
    char err[256], *secret_file = temp_file(SECRET "\r\n\n", strlen(SECRET) + 3);
    char *pem_file = temp_file(pem_a, strlen(pem_a));

    /* no key: authentication off, recovery settings untouched */
    app_node_config_init(&cfg);
    assert_int_equal(cfg.jwt_leeway_s, APP_JWT_DEFAULT_LEEWAY);
    assert_int_equal(cfg.max_rooms_per_socket, 1000);
    assert_int_equal(app_node_config_auth(&cfg, &jwt, err, sizeof(err)), SIO_OK);
    assert_null(jwt);
    assert_int_equal(cfg.srv.recovery_skip_middlewares, 1);
    app_node_config_free(&cfg);

    assert_int_equal(argv_config(&cfg, "--jwt-secret-file", secret_file, err, sizeof(err)),
                     APP_CFG_RUN);
    assert_int_equal(app_node_config_check(&cfg, err, sizeof(err)), SIO_OK);
    assert_int_equal(app_node_config_auth(&cfg, &jwt, err, sizeof(err)), SIO_OK);
    assert_non_null(jwt);
    assert_int_equal(app_jwt_alg(jwt), APP_JWT_HS256);
    assert_int_equal(cfg.srv.recovery_skip_middlewares, 0);
    assert_int_equal(verdict(jwt, hs("{}")), APP_JWT_OK);
    app_jwt_free(jwt);
    app_node_config_free(&cfg);

    assert_int_equal(argv_config(&cfg, "--jwt-public-key", pem_file, err, sizeof(err)),
                     APP_CFG_RUN);
    assert_int_equal(app_node_config_auth(&cfg, &jwt, err, sizeof(err)), SIO_OK);
    assert_int_equal(app_jwt_alg(jwt), APP_JWT_RS256);
    assert_int_equal(verdict(jwt, rs("{}", rsa_a)), APP_JWT_OK);
    app_jwt_free(jwt);
    app_node_config_free(&cfg);

    /* an RS256 key given as the HS256 secret file is just a secret (and nothing else) */
    assert_int_equal(argv_config(&cfg, "--jwt-secret-file", pem_file, err, sizeof(err)),
                     APP_CFG_RUN);
    assert_int_equal(app_node_config_auth(&cfg, &jwt, err, sizeof(err)), SIO_OK);
    assert_int_equal(verdict(jwt, rs("{}", rsa_a)), APP_JWT_ALG);
    app_jwt_free(jwt);
    app_node_config_free(&cfg);

    /* a secret file as the public key: refused, and the secret is not quoted */
    assert_int_equal(argv_config(&cfg, "--jwt-public-key", secret_file, err, sizeof(err)),
                     APP_CFG_RUN);
    assert_int_equal(app_node_config_auth(&cfg, &jwt, err, sizeof(err)), SIO_EINVAL);
    assert_null(jwt);
    assert_non_null(strstr(err, "not a PEM public key"));
    assert_null(strstr(err, "horse"));
    app_node_config_free(&cfg);

    assert_int_equal(
        argv_config(&cfg, "--jwt-public-key", "/nonexistent/key.pem", err, sizeof(err)),
        APP_CFG_RUN);
    assert_int_equal(app_node_config_auth(&cfg, &jwt, err, sizeof(err)), SIO_EINVAL);
    assert_non_null(strstr(err, "--jwt-public-key: cannot read /nonexistent/key.pem"));
    app_node_config_free(&cfg);

    /* two keys, or checks without a key */
    assert_int_equal(argv_config(&cfg, "--jwt-secret", "abc", err, sizeof(err)), APP_CFG_RUN);
    cfg.jwt_public_key = base_strdup(pem_file);
    assert_int_equal(app_node_config_check(&cfg, err, sizeof(err)), SIO_EINVAL);
    assert_non_null(strstr(err, "exclusive"));
    app_node_config_free(&cfg);
    assert_int_equal(argv_config(&cfg, "--jwt-audience", "x", err, sizeof(err)), APP_CFG_RUN);
    assert_int_equal(app_node_config_check(&cfg, err, sizeof(err)), SIO_EINVAL);
    assert_non_null(strstr(err, "need a key"));
    app_node_config_free(&cfg);
    assert_int_equal(argv_config(&cfg, "--jwt-secret", "", err, sizeof(err)), SIO_EINVAL);
    assert_non_null(strstr(err, "empty value"));
    app_node_config_free(&cfg);

    remove_temp(secret_file);
    remove_temp(pem_file);
}

/* ---------------------------------------------------------------- main */

static int setup_keys(void **state)
{
    rsa_a = EVP_RSA_gen(2048);
    rsa_b = EVP_RSA_gen(2048);
    if (rsa_a == NULL || rsa_b == NULL)
        return -1;
    pem_a = public_pem(rsa_a);
    return 0;
}

static int teardown_keys(void **state)
{
    EVP_PKEY_free(rsa_a);
    EVP_PKEY_free(rsa_b);
    free(pem_a);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hs256_valid),      cmocka_unit_test(test_hs256_wrong_secret),
        cmocka_unit_test(test_hs256_tampered),   cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_alg_cross),        cmocka_unit_test(test_alg_confusion),
        cmocka_unit_test(test_header_rules),     cmocka_unit_test(test_exp_nbf_edges),
        cmocka_unit_test(test_issuer_audience),  cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_length_bound),     cmocka_unit_test(test_rs256),
        cmocka_unit_test(test_key_loading),      cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_node_config_auth),
    };

    return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
