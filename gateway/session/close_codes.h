/* close_codes.h - every code with which the gateway ends a WebSocket or a
 * SockJS session: the one table of them.
 *
 * docs/PROTOCOL.md section 6 is the contract. This enum follows its table
 * row by row: the same codes, and each comment names the reasons the table
 * gives in backquotes; a change to either changes the other in the same
 * commit (tests/docs/check_close_codes.mjs compares the two).
 *
 * "WebSocket" below means {base}/client and SockJS's raw /websocket, "the
 * SockJS websocket" the framed /{server}/{session}/websocket, "SockJS HTTP"
 * the receiving requests (xhr, xhr_streaming, eventsource, ...). A session
 * (session.c) is always closed with one of the WebSocket codes, whatever
 * carries it; every SockJS transport then tells its client with a close
 * frame c[code,"reason"] of its own (the CG_CLOSE_SOCKJS_* codes) instead.
 *
 * In session/ because that is the lowest part that closes anything; the
 * transports and the server use it too. */
#ifndef CG_SESSION_CLOSE_CODES_H
#define CG_SESSION_CLOSE_CODES_H

enum cg_close_code {
    /* WebSocket, "client disconnected": after DISCONNECT, once its RECEIPT
     * and every answer owed are written. The SockJS websocket, "Go away!":
     * right after its c[3000,"Go away!"]. */
    CG_CLOSE_NORMAL = 1000,

    /* WebSocket, "server shutting down": the graceful stop (SIGTERM,
     * SIGINT), after the answers owed. Also what a SockJS session is closed
     * with when the server stops or when it had no receiving request for
     * sockjs_disconnect_ms; its client sees c[3000,"Go away!"]. */
    CG_CLOSE_GOING_AWAY = 1001,

    /* WebSocket, the detail: a STOMP protocol violation, after its ERROR.
     * The SockJS websocket, "Broken JSON encoding.": a message that is not
     * a JSON string or array of strings. */
    CG_CLOSE_PROTOCOL = 1002,

    /* Never sent. What a client sees when the connection ends without a
     * close frame (a killed gateway, a lost network, a peer that does not
     * read its close frame within a few seconds); also the code a session
     * logs when its connection went away first, or when the connection of
     * its SockJS receiving request broke. */
    CG_CLOSE_ABNORMAL = 1006,

    /* WebSocket, the message, after its ERROR: "401 unauthorized", "401
     * token expired: log in again", "403 forbidden destination", and every
     * limit and timeout of PROTOCOL.md section 7. WebSocket, "logged out":
     * logout of the session's token; "account disabled", "account
     * deleted": the backend API disabled or deleted the user (a K push
     * record, registry.c). Also what a SockJS session is closed
     * with when it queued more than sockjs_max_queue_bytes with no
     * receiving request; its client sees c[3000,"Go away!"]. */
    CG_CLOSE_POLICY = 1008,

    /* The SockJS websocket, "message too big": a message over 1 MiB. */
    CG_CLOSE_TOO_BIG = 1009,

    /* WebSocket, the message, after its ERROR: "503 service unavailable",
     * "500 internal error". */
    CG_CLOSE_INTERNAL = 1011,

    /* WebSocket, "output queue over limit": the output cap (PROTOCOL.md
     * section 7). "Try Again Later": the client may reconnect at once,
     * nothing is lost. */
    CG_CLOSE_TRY_LATER = 1013,

    /* SockJS HTTP, c[1002,"Connection interrupted"]: the connection of a
     * receiving request broke mid-response. The session ends, and later
     * requests for it get this frame until it is reaped. */
    CG_CLOSE_SOCKJS_INTERRUPTED = 1002,

    /* SockJS HTTP, c[2010,"Another connection still open"]: a second
     * receiving request while one is open; that request ends, the session
     * goes on. */
    CG_CLOSE_SOCKJS_ANOTHER = 2010,

    /* SockJS, c[3000,"Go away!"]: every end of a session by the server -
     * each case above but 1006 and the SockJS websocket's own 1002 and
     * 1009, after the ERROR when the reason is one - and a session that had
     * no receiving request for sockjs_disconnect_ms or queued more than
     * sockjs_max_queue_bytes without one. Later receiving requests get it
     * until the session is reaped. */
    CG_CLOSE_SOCKJS_GO_AWAY = 3000,
};

/* A SockJS close frame c[code,"reason"] as a string literal; code is
 * written as a number (a literal cannot be made from an enum), so each use
 * is paired with a static assertion against the enum (sockjs_internal.h). */
#define CG_SOCKJS_CLOSE_FRAME(code, reason) "c[" #code ",\"" reason "\"]"

#endif
