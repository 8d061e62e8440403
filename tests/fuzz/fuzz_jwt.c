/* fuzz_jwt.c -- libFuzzer target for node/program/jwt.c.
 *
 * The first byte picks how the rest is used:
 *   even: the bytes ARE the token, verified by an HS256 verifier (fixed secret) and an
 *         RS256 one (a key pair made at start-up): the unauthenticated path -- shape,
 *         base64url, header, signature -- which is what any client can reach;
 *   odd:  the bytes are "header JSON" NUL "payload JSON", made into a token signed with
 *         the verifier's own secret, so the fuzzer also reaches what only an issuer can:
 *         payload parsing and the exp/nbf/iss/aud checks.
 * Properties, besides "no crash, no leak, no UB": a verdict is always given and in
 * range; an accepted token yields an object; a token signed with the right secret is
 * never refused for its signature; an over-long one is refused as too long and only
 * then; the RS256 verifier accepts nothing (the fuzzer cannot sign with its key).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "base_alloc.h"
#include "jwt.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

#define SECRET "fuzzing secret, 32 bytes at least"
#define NOW 1700000000

static app_jwt_t *hs, *rs;

static void init(void)
{
    app_jwt_config_t c = {APP_JWT_HS256, SECRET, strlen(SECRET), "iss-x", "aud-x", 30};
    EVP_PKEY *key = EVP_RSA_gen(2048);
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem, err[200];
    long len;

    CHECK(key != NULL && bio != NULL && PEM_write_bio_PUBKEY(bio, key) == 1);
    len = BIO_get_mem_data(bio, &pem);
    hs = app_jwt_new(&c, err, sizeof(err));
    c.alg = APP_JWT_RS256;
    c.key = pem;
    c.key_len = (size_t)len;
    c.issuer = c.audience = NULL;
    rs = app_jwt_new(&c, err, sizeof(err));
    CHECK(hs != NULL && rs != NULL);
    BIO_free(bio);
    EVP_PKEY_free(key);
}

/* Verifies, checks the verdict's invariants, returns it. */
static app_jwt_err_t verify(const app_jwt_t *v, const char *token, size_t len)
{
    app_jwt_err_t why = APP_JWT_ERR_COUNT;
    cJSON *claims = app_jwt_verify(v, token, len, NOW, &why);

    CHECK(why < APP_JWT_ERR_COUNT);
    CHECK(app_jwt_reason(why)[0] != '\0');
    CHECK((claims != NULL) == (why == APP_JWT_OK));
    CHECK(claims == NULL || cJSON_IsObject(claims));
    CHECK((why == APP_JWT_TOO_LONG) == (len > APP_JWT_MAX_TOKEN));
    cJSON_Delete(claims);
    return why;
}

static size_t b64url(const unsigned char *in, size_t n, char *out)
{
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);

    for (int i = 0; i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    while (len > 0 && out[len - 1] == '=')
        len--;
    return (size_t)len;
}

static void signed_by_us(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t hn = nul != NULL ? (size_t)(nul - data) : size;
    size_t pn = nul != NULL ? size - hn - 1 : 0;
    char *tok = base_malloc(2 * size + 128); /* base64 grows by a third, plus the MAC */
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    size_t n;

    n = b64url(data, hn, tok);
    tok[n++] = '.';
    n += b64url(nul != NULL ? nul + 1 : data, pn, tok + n);
    CHECK(HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)tok, n, mac, &maclen) !=
          NULL);
    tok[n++] = '.';
    n += b64url(mac, maclen, tok + n);
    CHECK(verify(hs, tok, n) != APP_JWT_SIGNATURE);
    base_free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (hs == NULL)
        init();
    if (size == 0)
        return 0;
    if (data[0] & 1) {
        signed_by_us(data + 1, size - 1);
    } else {
        verify(hs, (const char *)data + 1, size - 1);
        CHECK(verify(rs, (const char *)data + 1, size - 1) != APP_JWT_OK);
    }
    return 0;
}
