/* http_body.h - the JSON bodies of the HTTP API, decoded apart from lws so
 * the decoder can be fuzzed (tests/fuzz/fuzz_http_body.c). */
#ifndef CG_HTTP_BODY_H
#define CG_HTTP_BODY_H

#include <stddef.h>
#include <stdint.h>

/* {"username": "...", "password": "..."}: views into the parsed document,
 * which the struct owns until cg_credentials_cleanup(). Strings may hold
 * NUL bytes (\u0000); the lengths are exact. */
struct cg_credentials {
    void       *doc;        /* json_t * */
    const char *name;
    size_t      name_len;
    const char *password;
    size_t      password_len;
};

/* Decode body (len bytes, not NUL-terminated). Returns 0, or CG_E_INVAL
 * with *why set to the reason the 400 answer gives; out then owns nothing. */
int cg_http_decode_credentials(const char *body, size_t len,
                               struct cg_credentials *out, const char **why);

/* Release the document and wipe the views (a password was in there). */
void cg_credentials_cleanup(struct cg_credentials *c);

/* Parse a Content-Length value (len bytes, not NUL-terminated) as HTTP
 * defines it: one or more decimal digits and nothing else (no sign, space,
 * comma list or suffix). Returns 0 with *out set, or CG_E_INVAL, also when
 * the number does not fit in 64 bits. lws 4.1 reads the header with
 * atoll(), which takes "-1", "12abc" and "5,5" for numbers: check it here
 * before trusting lws's framing. */
int cg_http_parse_content_length(const char *s, size_t len, uint64_t *out);

#endif
