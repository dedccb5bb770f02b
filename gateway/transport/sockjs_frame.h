/* sockjs_frame.h - the pure half of the SockJS 0.3.3 transport: URL
 * parsing, JSON string quoting of outgoing frames, decoding of incoming
 * payloads, jsonp callback and form-body checks.
 *
 * No I/O, no allocation, no lws: every function is a function of its
 * bytes (STYLE.md principle 1), so it is unit-tested and fuzzed on its own
 * (tests/unit/gateway/test_sockjs_frame.c, tests/fuzz/fuzz_sockjs_decode.c).
 * The sockjs_*.c files of the transport are its only users in the gateway. */
#ifndef CG_SOCKJS_FRAME_H
#define CG_SOCKJS_FRAME_H

#include <stddef.h>

#include "core/common.h"
#include "stomp/str.h"

/* ---- URLs ---------------------------------------------------------------- */

/* Longest server or session id accepted in a session URL. sockjs-client
 * uses 3 digits and 8 characters; the bound only keeps the session table's
 * keys small. Longer ids answer 404 like any other invalid id. */
#define CG_SOCKJS_ID_MAX 128

enum cg_sockjs_route {
    CG_SJ_NOT_FOUND = 0,
    CG_SJ_GREETING,          /* "" or "/" */
    CG_SJ_INFO,              /* "/info" */
    CG_SJ_RAW_WEBSOCKET,     /* "/websocket" */
    /* /{server}/{session}/<transport> */
    CG_SJ_WEBSOCKET,
    CG_SJ_XHR,
    CG_SJ_XHR_SEND,
    CG_SJ_XHR_STREAMING,
    CG_SJ_EVENTSOURCE,
    CG_SJ_HTMLFILE,
    CG_SJ_JSONP,
    CG_SJ_JSONP_SEND,
};

struct cg_sockjs_path {
    enum cg_sockjs_route route;
    struct stomp_str     server;    /* views into the path; set for session URLs */
    struct stomp_str     session;
};

/* Classify path (relative to {base}/socketServer, no query string):
 * "" "/" "/info" "/websocket" or "/{server}/{session}/<transport>" where
 * both ids are non-empty, at most CG_SOCKJS_ID_MAX bytes and contain no
 * '.' and no '/' (spec: "not an empty string, anything containing dots or
 * paths with less or more parts"). Everything else is CG_SJ_NOT_FOUND.
 * Never fails; out's views borrow path. */
void cg_sockjs_parse_path(const char *path, size_t len, struct cg_sockjs_path *out);

/* 1 if id is a valid server or session id (see above), else 0. */
int cg_sockjs_id_valid(const char *id, size_t len);

/* ---- outgoing: JSON string quoting ------------------------------------- */

/* Quoting flags. */
#define CG_SJ_QUOTE_HTML 0x1u  /* also escape < > & (htmlfile: the string sits
                                  inside a <script> element of an HTML page) */

/* Write the JSON string literal (with its quotes) for the bytes in[0..len)
 * to out and return its length; with out == NULL only measure (measure
 * first, reserve, then write: the two calls return the same length).
 *
 * Escapes what JSON needs (" \ and U+0000-U+001F, the short forms \b \f \n
 * \r \t where they exist) plus what SockJS servers must escape so that no
 * browser or proxy mangles the frame (sockjs-protocol 0.3.3
 * "escapable_by_server", as sockjs-node's quote()): U+200C-U+200F,
 * U+2028-U+202F, U+2060-U+206F, U+FFF0-U+FFFF, and every UTF-16 surrogate
 * U+D800-U+DFFF - so a character above U+FFFF (an emoji) goes out as an
 * escaped surrogate pair and an encoded lone surrogate (CESU/WTF-8 bytes
 * ED A0..BF xx) as its own \udxxx. A byte that is not part of well-formed
 * UTF-8 becomes \ufffd. Everything else is copied as is, so the output is
 * always valid UTF-8 and valid JSON. */
size_t cg_sockjs_quote(const char *in, size_t len, unsigned flags, char *out);

/* ---- incoming: payload decoding -------------------------------------- */

/* Decoding errors, with the exact answer texts of the spec. */
#define CG_SJ_E_EMPTY  (-1)    /* "Payload expected." */
#define CG_SJ_E_BROKEN (-2)    /* "Broken JSON encoding." */

/* Decoding flags. */
#define CG_SJ_DECODE_SINGLE 0x1u  /* a lone JSON string is one message (the
                                     framed websocket accepts both forms) */

/* Called for each decoded message; msg points into the caller's out. */
typedef void (*cg_sockjs_msg_cb)(const char *msg, size_t len, void *data);

/* Decode a SockJS client payload: a JSON array of strings, ["a","b"]
 * (with CG_SJ_DECODE_SINGLE also one JSON string, "a"), JSON whitespace
 * allowed around tokens. The messages' UTF-8 bytes are written one after
 * the other to out, which must hold len bytes (decoding never grows), and
 * their total length goes to *out_len: the STOMP byte stream does not care
 * where one SockJS message ended. cb (may be NULL) sees each message as it
 * is decoded, so it may see the first messages of a payload that turns out
 * to be broken; callers wanting all-or-nothing use out only after 0.
 *
 * Strict JSON: raw control characters, invalid UTF-8 (overlong, surrogate,
 * above U+10FFFF), bad escapes, non-string elements and trailing bytes are
 * CG_SJ_E_BROKEN. \u escapes of surrogate pairs become one 4-byte
 * character; a lone surrogate becomes U+FFFD (what a browser's UTF-8
 * encoder does). An empty payload (len 0) is CG_SJ_E_EMPTY.
 *
 * Returns 0 or CG_SJ_E_EMPTY / CG_SJ_E_BROKEN. Reads exactly in[0..len). */
int cg_sockjs_decode(const char *in, size_t len, unsigned flags, char *out,
                     size_t *out_len, cg_sockjs_msg_cb cb, void *data);

/* The answer text for a decoding error ("Broken JSON encoding."). */
const char *cg_sockjs_decode_strerror(int err);

/* ---- jsonp / htmlfile -------------------------------------------------- */

/* Longest jsonp/htmlfile callback name accepted. The spec sets no limit;
 * sockjs-client's names are about 40 bytes. */
#define CG_SOCKJS_CALLBACK_MAX 128

/* 1 if name matches ^[a-zA-Z0-9_.]+$ and is at most CG_SOCKJS_CALLBACK_MAX
 * bytes, else 0. Anything else in a name a page would execute is refused
 * (the callback is echoed into a script). */
int cg_sockjs_callback_valid(const char *name, size_t len);

/* Find the first "d=" field of an application/x-www-form-urlencoded body
 * (jsonp_send) and URL-decode it (%XX and '+') into out, which must hold
 * len bytes. Returns the decoded length (0 for "d="), CG_SJ_E_EMPTY when
 * there is no d field, or CG_SJ_E_BROKEN for a bad %-escape. */
long cg_sockjs_form_d(const char *body, size_t len, char *out);

#endif
