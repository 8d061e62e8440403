/* jwt.h -- verify the JSON Web Tokens clients present at CONNECT (HS256 or RS256).
 *
 * One verifier per process, built at start-up from the configured key; verifying is
 * I/O-free and needs nothing but the token and the current time, so the fuzzer and the
 * unit tests drive it exactly as the node does.
 *
 * Only the compact form "header.payload.signature" (RFC 7515 3.1, base64url without
 * padding) of a signed token is accepted. The verifier is configured with ONE
 * algorithm and the header's "alg" must name exactly that one: "none", the other
 * algorithm or anything else is refused before the signature is looked at, which is
 * what closes the algorithm-confusion holes (an RS256 public key used as an HS256
 * secret, an unsigned token). The payload is parsed only once the signature holds.
 */
#ifndef APP_JWT_H
#define APP_JWT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define APP_JWT_MAX_TOKEN 8192    /* bytes of a token; longer ones are refused unread */
#define APP_JWT_DEFAULT_LEEWAY 30 /* seconds of clock skew allowed on exp and nbf */

typedef enum app_jwt_alg {
    APP_JWT_HS256 = 0, /* HMAC-SHA256 with a shared secret */
    APP_JWT_RS256 = 1, /* RSASSA-PKCS1-v1_5 SHA-256 with an RSA public key */
} app_jwt_alg_t;

/* Why a token was refused. app_jwt_reason() gives the short text clients see. */
typedef enum app_jwt_err {
    APP_JWT_OK = 0,
    APP_JWT_MALFORMED,     /* not three base64url parts of JSON objects */
    APP_JWT_TOO_LONG,      /* over APP_JWT_MAX_TOKEN bytes */
    APP_JWT_ALG,           /* header "alg" is not the configured algorithm */
    APP_JWT_HEADER,        /* header asks for what we do not implement ("crit") */
    APP_JWT_SIGNATURE,     /* signature does not verify */
    APP_JWT_EXPIRED,       /* exp is past (beyond the leeway) */
    APP_JWT_NOT_YET_VALID, /* nbf is ahead (beyond the leeway) */
    APP_JWT_ISSUER,        /* iss is not the configured issuer */
    APP_JWT_AUDIENCE,      /* aud does not name the configured audience */
    APP_JWT_CLAIM,         /* exp/nbf/iss/aud present with the wrong type */
    APP_JWT_INTERNAL,      /* the crypto library failed (not the token's fault) */
    APP_JWT_ERR_COUNT
} app_jwt_err_t;

typedef struct app_jwt_config {
    app_jwt_alg_t alg;
    const void *key;      /* HS256: the secret's bytes; RS256: PEM text of the public key */
    size_t key_len;       /* bytes at key */
    const char *issuer;   /* NULL = "iss" not checked */
    const char *audience; /* NULL = "aud" not checked */
    unsigned leeway_s;    /* clock skew allowed on exp and nbf */
} app_jwt_config_t;

typedef struct app_jwt app_jwt_t; /* one per process (per configured key) */

/* Builds a verifier; the key, issuer and audience are copied (cfg may go away). An
 * RS256 key must be a PEM "PUBLIC KEY" (SubjectPublicKeyInfo) holding an RSA key of at
 * least 2048 bits (RFC 7518 3.3). NULL with a one-line reason in err (empty secret, not
 * a public key, a private key given instead, key too small); the reason never quotes
 * the key. */
app_jwt_t *app_jwt_new(const app_jwt_config_t *cfg, char *err, size_t errlen);

/* Frees the verifier and wipes the secret it held. NULL is fine. */
void app_jwt_free(app_jwt_t *jwt);

app_jwt_alg_t app_jwt_alg(const app_jwt_t *jwt);
/* "HS256" / "RS256". */
const char *app_jwt_alg_name(app_jwt_alg_t alg);

/* Verifies token (len bytes, no NUL needed) at time now (seconds since the epoch).
 * Returns the payload's claims (a cJSON object the caller owns and cJSON_Deletes), or
 * NULL with *why set to the first reason found (why may be NULL). Never reads more
 * than len bytes, never allocates more than a few times len. */
cJSON *app_jwt_verify(const app_jwt_t *jwt, const char *token, size_t len, int64_t now,
                      app_jwt_err_t *why);

/* Short reason for clients and logs ("expired", "bad signature" ...); "?" when out of
 * range. */
const char *app_jwt_reason(app_jwt_err_t why);

#endif
