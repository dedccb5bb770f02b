/* http_body.c - decoding of the HTTP API's JSON request bodies.
 *
 * Kept apart from http_api.c (which is all lws plumbing) so that the one
 * piece of it that reads untrusted bytes can be fuzzed on its own
 * (tests/fuzz/fuzz_http_body.c). The body size is already bounded by
 * http_max_body when it gets here; jansson rejects invalid UTF-8 and, with
 * JSON_REJECT_DUPLICATES, a second "password" that could hide the first.
 * The Content-Length parser lives here for the same reason: it decides how
 * a peer's bytes are framed. */
#include "fmacros.h"

#include <string.h>

#include <jansson.h>

#include "core/common.h"
#include "http/http_body.h"

int
cg_http_decode_credentials(const char *body, size_t len, struct cg_credentials *out,
                           const char **why)
{
    json_error_t e;
    json_t *j = json_loadb(body ? body : "", body ? len : 0, JSON_REJECT_DUPLICATES, &e);
    json_t *n, *p;

    memset(out, 0, sizeof *out);
    if (j == NULL || !json_is_object(j)) {
        json_decref(j);
        *why = "body must be a JSON object";
        return CG_E_INVAL;
    }
    n = json_object_get(j, "username");
    p = json_object_get(j, "password");
    if (!json_is_string(n) || !json_is_string(p)) {
        json_decref(j);
        *why = "username and password are required strings";
        return CG_E_INVAL;
    }
    out->doc = j;
    out->name = json_string_value(n);
    out->name_len = json_string_length(n);
    out->password = json_string_value(p);
    out->password_len = json_string_length(p);
    return 0;
}

int
cg_http_parse_content_length(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0)
        return CG_E_INVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';

        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return CG_E_INVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

void
cg_credentials_cleanup(struct cg_credentials *c)
{
    json_t *p;

    if (c->doc != NULL) {
        /* jansson owns the password's bytes: wipe them before freeing. */
        p = json_object_get(c->doc, "password");
        if (json_is_string(p) && json_string_length(p) > 0)
            explicit_bzero((char *)json_string_value(p), json_string_length(p));
        json_decref(c->doc);
    }
    memset(c, 0, sizeof *c);
}

