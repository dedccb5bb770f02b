/* session_connect.c - CONNECT: from a session's first frame to CONNECTED.
 *
 * What it does. The CONNECT (or STOMP) frame's handler,
 * cg_session__on_connect() (in the dispatch table, session_dispatch.c),
 * agrees on the version and the heart-beats, finds the token and asks
 * auth.c to check it; the check's answer (on_auth) attaches the session to
 * its user's channel (registry.c); the attach's answer (on_attached)
 * queues CONNECTED and resumes reading:
 *
 *   AWAIT_CONNECT --CONNECT--> AUTHENTICATING --token valid--> ATTACHING
 *       --user channel subscribed, CONNECTED queued--> CONNECTED
 *
 * A long-link session (session_ll.c) takes the same path from its auth
 * packet: cg_session__auth_start() is the token check both share, and at
 * the end session_ll.c answers instead of CONNECTED.
 *
 * Any failure on the way is an ERROR and a close (cg_session__fail in
 * session.c); a shutdown meanwhile closes with 1001. Reading is paused
 * (PAUSE_AUTH) from CONNECT to CONNECTED: frames sent behind CONNECT wait,
 * unparsed, until the session is ready for them.
 *
 * Negotiation (STOMP 1.2 "Protocol Negotiation" and "Heart-beating"):
 *   - the version is the highest of 1.0/1.1/1.2 offered in accept-version
 *     (missing: 1.0), or the subprotocol's when the client offers it too;
 *   - heart-beats are 1.1+; each direction uses the larger of what one
 *     side can send and the other wants, 0 meaning none; a client asking
 *     for more than heartbeat_max_ms is held to heartbeat_max_ms;
 *   - the token comes from the handshake (cg_session_open) first, then
 *     the passcode header (any login), then a token header; it is wiped
 *     (cg_session__token_forget) as soon as the check answers.
 *
 * Choices where STOMP or PROTOCOL.md leave room:
 *   - A session lives no longer than its login token: at the expiry auth.c
 *     read at CONNECT, ERROR "401 token expired: log in again" and a close
 *     (1008; SockJS adds c[3000,"Go away!"] as after any ERROR). Logout
 *     revokes a token early (registry.c closes its sessions). The check is
 *     one more deadline of the session's one timer (session_timer.c), so it
 *     costs no handle and no walk over the sessions, and it is as exact as
 *     the loop's millisecond clock; the expiry is converted to loop time
 *     once, here, at the token check, so a later step of the wall clock
 *     does not move it.
 *
 * Asynchronous callbacks (the token check, the registry attach) carry the
 * session id, never a bare session pointer (STYLE.md 4.3), and find the
 * session again with cg_session_lookup().
 *
 * Owns nothing but the token check's small request (struct auth_req), which
 * on_auth() frees. */
#include "fmacros.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chat/auth.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/config.h"
#include "core/context.h"
#include "core/log.h"
#include "core/metrics.h"
#include "session/outq.h"
#include "session/registry.h"
#include "session/session.h"
#include "session/session_internal.h"
#include "stomp/stomp.h"

#ifndef CG_VERSION
#define CG_VERSION "dev"
#endif

/* ------------------------------------------------------------------------ */
/* Negotiation                                                               */
/* ------------------------------------------------------------------------ */

/* Highest of 1.0/1.1/1.2 offered in accept-version (missing: 1.0), or the
 * subprotocol's version when the client offers it too. 0: none common. */
static int
negotiate_version(const cg_session *s, const struct stomp_str *av)
{
    unsigned offered = 0;       /* bit 0: 1.0, bit 1: 1.1, bit 2: 1.2 */
    size_t i = 0, start;

    if (av == NULL)
        offered = 1;
    else {
        while (i <= av->len) {
            start = i;
            while (i < av->len && av->ptr[i] != ',')
                i++;
            if (i - start == 3 && av->ptr[start] == '1' && av->ptr[start + 1] == '.' &&
                av->ptr[start + 2] >= '0' && av->ptr[start + 2] <= '2')
                offered |= 1u << (av->ptr[start + 2] - '0');
            i++;
        }
    }
    if (s->ws_version >= 10 && s->ws_version <= 12 &&
        (offered & (1u << (s->ws_version - 10))))
        return s->ws_version;
    if (offered & 4) return STOMP_V1_2;
    if (offered & 2) return STOMP_V1_1;
    if (offered & 1) return STOMP_V1_0;
    return 0;
}

/* "cx,cy" in milliseconds. */
static int
parse_heart_beat(const struct stomp_str *v, uint64_t *cx, uint64_t *cy)
{
    const char *comma = memchr(v->ptr, ',', v->len);

    if (comma == NULL)
        return -1;
    if (parse_u64(v->ptr, (size_t)(comma - v->ptr), cx) < 0 ||
        parse_u64(comma + 1, v->len - (size_t)(comma - v->ptr) - 1, cy) < 0)
        return -1;
    return 0;
}

static uint64_t
clamp_u64(uint64_t v, uint64_t max)
{
    return max > 0 && v > max ? max : v;
}

/* ------------------------------------------------------------------------ */
/* CONNECT                                                                   */
/* ------------------------------------------------------------------------ */

struct auth_req {
    struct cg_server *srv;
    uint64_t          sid;
};

static void on_auth(int err, const struct cg_principal *who, const char *token,
                    void *data);

int
cg_session__on_connect(cg_session *s, struct frame_ctx *c)
{
    const struct cg_config *cfg = cfg_of(s);
    const struct stomp_str *tok = NULL;
    uint64_t cx = 0, cy = 0, sx, sy, max;
    char r[80];
    int v;

    if ((v = negotiate_version(s, c->h[H_ACCEPT_VERSION])) == 0)
        return fail(c, CG_E_PROTO, "supported versions are 1.0,1.1,1.2");

    /* Heart-beats are STOMP 1.1+. The client can send every cx and wants
     * one every cy; we can send every sx and want one every sy. Each
     * direction uses the larger of the pair, 0 meaning none. A client
     * asking for more than heartbeat_max_ms is held to heartbeat_max_ms. */
    if (v >= STOMP_V1_1 && c->h[H_HEART_BEAT] != NULL &&
        parse_heart_beat(c->h[H_HEART_BEAT], &cx, &cy) < 0)
        return fail(c, CG_E_PROTO, "invalid heart-beat header %s (expected cx,cy)",
                    repr(c->h[H_HEART_BEAT], r, sizeof r));
    max = cfg->heartbeat_max_ms > 0 ? (uint64_t)cfg->heartbeat_max_ms : 0;
    sx = sy = v >= STOMP_V1_1 ? clamp_u64(cfg_size(cfg->heartbeat_ms), max) : 0;
    cx = clamp_u64(cx, max);
    cy = clamp_u64(cy, max);
    s->hb_sx = (uint32_t)clamp_u64(sx, UINT32_MAX);
    s->hb_sy = (uint32_t)clamp_u64(sy, UINT32_MAX);
    s->hb_out = (uint32_t)clamp_u64(sx && cy ? (sx > cy ? sx : cy) : 0, UINT32_MAX);
    s->hb_in = (uint32_t)clamp_u64(sy && cx ? (sy > cx ? sy : cx) : 0, UINT32_MAX);
    s->version = (uint8_t)v;

    /* The token: handshake first, then passcode (any login), then token. */
    if (s->token == NULL) {
        tok = c->h[H_PASSCODE] && c->h[H_PASSCODE]->len ? c->h[H_PASSCODE] : c->h[H_TOKEN];
        if (tok != NULL && tok->len > 0 && tok->len <= SESSION_TOKEN_MAX) {
            if ((s->token = cg_strndup(tok->ptr, tok->len)) == NULL)
                return fail(c, CG_E_NOMEM, "out of memory");
            s->token_len = tok->len;
        } else if (tok != NULL && tok->len > SESSION_TOKEN_MAX) {
            s->srv->metrics.auth_failures++;
            return fail(c, CG_E_AUTH, "invalid token");
        }
    }
    return cg_session__auth_start(s, c);
}

int
cg_session__auth_start(cg_session *s, struct frame_ctx *c)
{
    struct auth_req *req;
    int rc;

    if (s->token == NULL) {
        s->srv->metrics.auth_failures++;
        return fail(c, CG_E_AUTH, "missing token");
    }
    if (!cg_auth_token_shaped(s->token, s->token_len)) {
        s->srv->metrics.auth_failures++;
        cg_session__token_forget(s);
        return fail(c, CG_E_AUTH, "invalid token");
    }
    if (s->srv->auth == NULL)
        return fail(c, CG_E_STORE, "authentication unavailable");

    s->state = ST_AUTHENTICATING;
    cg_session__pause_input(s, PAUSE_AUTH);    /* later frames wait for CONNECTED */
    if ((req = cg_malloc(sizeof *req)) == NULL)
        return fail(c, CG_E_NOMEM, "out of memory");
    req->srv = s->srv;
    req->sid = s->id;
    rc = cg_auth_check_token(s->srv->auth, s->token, s->token_len, on_auth, req);
    if (rc < 0) {
        cg_free(req);
        if (rc == CG_E_AUTH)       /* known bad here; auth.c counted it */
            return fail(c, CG_E_AUTH, "invalid or expired token");
        return fail(c, rc == CG_E_NOMEM ? rc : CG_E_STORE, "token check failed: %s",
                    cg_strerror(rc));
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Authentication and attach                                                 */
/* ------------------------------------------------------------------------ */

static void
connected(cg_session *s)
{
    struct kv h[5];
    char hb[48], sid[24];
    struct cg_buf *b = NULL;
    int rc;

    s->state = ST_CONNECTED;
    s->connect_dl = 0;
    s->flags |= F_AUTH_LIMITS;
    cg_session__apply_limits(s);
    if (s->proto == CG_PROTO_LONGLINK) {
        cg_session__ll_connected(s);
        return;
    }
    stomp_parser_set_version(&s->parser, (enum stomp_version)s->version);

    snprintf(hb, sizeof hb, "%" PRIu32 ",%" PRIu32, s->hb_sx, s->hb_sy);
    snprintf(sid, sizeof sid, "%" PRIu64, s->id);
    h[0] = (struct kv){ "version", s->version == STOMP_V1_2 ? STOMP_STR("1.2")
                                   : s->version == STOMP_V1_1 ? STOMP_STR("1.1")
                                                              : STOMP_STR("1.0") };
    h[1] = (struct kv){ "heart-beat", { hb, strlen(hb) } };
    h[2] = (struct kv){ "server", STOMP_STR("chatgate/" CG_VERSION) };
    h[3] = (struct kv){ "session", { sid, strlen(sid) } };
    h[4] = (struct kv){ "user-name", { s->name, strlen(s->name) } };
    rc = cg_session__render_raw(out_version(s), STOMP_CMD_CONNECTED, h, 5, NULL, &b);
    if (rc == 0)
        rc = cg_outq_push_raw(&s->outq, b);
    if (rc < 0) {
        cg_session__fail(s, CG_E_NOMEM, "out of memory");
        return;
    }
    s->last_read = s->last_write = now_ms(s);
    cg_slog(s, CG_LOG_INFO, "connected: STOMP %d.%d, heart-beat out %" PRIu32
            " ms, in %" PRIu32 " ms", s->version / 10, s->version % 10,
            s->hb_out, s->hb_in);
    cg_session__after_enqueue(s);
    if (s->state == ST_CONNECTED)
        cg_session__resume_input(s, PAUSE_AUTH);
}

static void
on_attached(uint64_t sid, int err, void *data)
{
    cg_session *s = cg_session_lookup(data, sid);

    if (s == NULL || s->state != ST_ATTACHING)
        return;
    if (err == CG_E_CLOSED)
        cg_session__begin_close(s, CG_CLOSE_GOING_AWAY, "server shutting down", CLOSE_CANCEL);
    else if (err < 0)
        cg_session__fail(s, CG_E_STORE, "could not subscribe to the user's channel");
    else
        connected(s);
}

/* The loop time at which a token valid until expires_ms (wall clock, as
 * auth.c reads it from the token's record) runs out, or 0 when none is
 * known (never the case for a token auth.c accepted: it refuses an expired
 * one). Converted once: a later step of the wall clock does not move it. */
static uint64_t
expiry_deadline(const cg_session *s, int64_t expires_ms)
{
    int64_t left;
    uint64_t due;

    if (expires_ms <= 0)
        return 0;
    left = expires_ms - cg_now_ms();
    due = now_ms(s) + (left > 0 ? (uint64_t)left : 0);
    return due > 0 ? due : 1;
}

static void
on_auth(int err, const struct cg_principal *who, const char *token, void *data)
{
    struct auth_req *req = data;
    cg_session *s = cg_session_lookup(req->srv, req->sid);
    int rc;

    (void)token;
    cg_free(req);
    if (s == NULL || s->state != ST_AUTHENTICATING)
        return;
    cg_session__token_forget(s);
    /* auth.c counts the failures it finds (auth_failures); the session
     * counts only those it finds itself (no token, malformed token). */
    if (err == CG_E_AUTH) {
        cg_session__fail(s, CG_E_AUTH, "invalid or expired token");
        return;
    }
    if (err == 0 && (who == NULL || who->uid == 0)) {
        s->srv->metrics.auth_failures++;
        cg_session__fail(s, CG_E_AUTH, "invalid token");
        return;
    }
    if (err == CG_E_CLOSED) {
        cg_session__begin_close(s, CG_CLOSE_GOING_AWAY, "server shutting down", CLOSE_CANCEL);
        return;
    }
    if (err < 0) {
        cg_session__fail(s, CG_E_STORE, "token check failed: store unavailable");
        return;
    }
    s->uid = who->uid;
    snprintf(s->name, sizeof s->name, "%s", who->name);
    snprintf(s->token_hash, sizeof s->token_hash, "%s", who->token_hash);
    s->expire_dl = expiry_deadline(s, who->expires_ms);
    s->state = ST_ATTACHING;
    s->flags |= F_ATTACHED;
    rc = s->srv->registry ? cg_registry_attach(s->srv->registry, s->id, s->uid,
                                                on_attached, s->srv)
                          : CG_E_CLOSED;
    if (rc == CG_E_LIMIT) {
        char d[DETAIL_MAX];

        s->flags &= (uint16_t)~F_ATTACHED;
        snprintf(d, sizeof d, "user has %lld sessions here (max_user_sessions)",
                 (long long)cfg_of(s)->max_user_sessions);
        cg_session__fail(s, CG_E_LIMIT, d);
    } else if (rc < 0) {
        s->flags &= (uint16_t)~F_ATTACHED;
        cg_session__fail(s, rc == CG_E_NOMEM ? rc : CG_E_STORE,
                     "could not subscribe to the user's channel");
    }
    /* else on_attached() runs on a later turn (at once only without a store) */
}
