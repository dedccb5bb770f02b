/* store.h - asynchronous Redis: Lua scripts, plain commands, and the per-user
 * pub/sub channels, all on the gateway's libuv loop (hiredis libuv adapter).
 *
 * redis_connections command connections (default 4; everything pipelined,
 * replies in order on each) and one subscriber connection. Requests are
 * sharded over the command connections by a shard key (cg_store_chat_op,
 * cg_store_eval_keyed; chat.c passes the uid whose keys the script touches,
 * i.e. the receiver), so ORDERING GUARANTEE: requests submitted with the
 * same shard key are executed by Redis and answered in submission order
 * (chat operations and other requests alike); requests with different keys
 * may run and be answered in any order relative to each other. With
 * msgid_unique_per_sender a chat send is two requests (chat.c): the claim,
 * keyed by the sender, then the send, keyed by the receiver and submitted
 * when the claim answers; it takes its place among the receiver's requests
 * only then.
 * cg_store_eval() and cg_store_command() use shard key 0.
 *
 * Batching: the chat operations (send, recive) submitted during one turn of
 * the loop are queued per connection and sent as one EVALSHA of the chat
 * script (gateway/store/lua/chat.lua) right after the loop's I/O phase (a
 * uv_check handle), or at once when redis_batch_max operations are queued.
 * Any other request on that connection first sends what is queued, which
 * keeps the order above. Several
 * connections exist because Redis reads at most ~16-20 KiB per client per
 * event-loop turn and, with appendfsync always, fsyncs once per turn: N
 * connections let one fsync cover N times as many scripts.
 * Every connection reconnects on its own with exponential backoff up to
 * redis_reconnect_max_ms; after a reconnect the scripts are loaded again
 * (SCRIPT LOAD) and every channel is subscribed again.
 *
 * Redis data model (ARCHITECTURE.md "Redis"). Keys of one user share the hash
 * tag {u:<uid>} so every script touches one slot and runs on Redis Cluster:
 *
 *   cg:uid                  INCR counter of user ids
 *   cg:name:<lower(name)>   string: uid                (name -> uid lookup)
 *   cg:tok:<sha256 hex>     string: "<uid>:<expires ms>:<name>", PX = ttl
 *   {u:<uid>}:user          hash: name, pw (PBKDF2 record), created, and
 *                           trimmed: the history (sync) is every id above
 *                           it, at least the last history_max (chat.lua
 *                           moves it in chunks, so up to history_max +
 *                           min(64, history_max / 16)); ids are consecutive
 *   {u:<uid>}:seq           INCR counter of the user's message ids (sync key)
 *   {u:<uid>}:msg           hash: "<id>" -> MESSAGE body JSON, and
 *                           "m:<msgID>" -> "<sender uid>:<id>:<time ms>:<digest>:<f>"
 *                           for the msgID's newest message (dedupe, confirm
 *                           by msgID); digest: 16 hex digits of SHA-1 of the
 *                           content (absent, with its ":", in entries of
 *                           before it); f: 1 once pushed to a session or
 *                           read by an init (-> redelivered), + 2 when the
 *                           sender asked for a delivered notice
 *   {u:<uid>}:pending       zset: id (score id) while unconfirmed
 *   {u:<uid>}:psend         hash: sender uid -> its pending messages in
 *                           this inbox (max_pending_per_sender)
 *   {u:<uid>}:sent, :sent.old  hashes: msgID -> "<receiver>:<digest>" of
 *                           this user's last 1000 to 2000 sends (the claim
 *                           of chat.lua, with msgid_unique_per_sender
 *                           only), expire a day after the last
 *
 * Channel cg:u:<uid> carries the push records of store/push_record.h (a
 * new message M, a delivered notice D, a logout L), which also decodes and
 * encodes them.
 *
 * Callback rule (STYLE.md 3, libuv's): a function that returns an error
 * never calls its callback; one that returned 0 calls it exactly once, and
 * never before it returned (from the loop, or from cg_store_close() for
 * what is still outstanding), with reply NULL and err < 0 (CG_E_STORE,
 * CG_E_CLOSED) when there is no reply. A reply is borrowed until the
 * callback returns (struct cg_store_reply below). */
#ifndef CHATGATE_STORE_H
#define CHATGATE_STORE_H

#include <stddef.h>
#include <stdint.h>

struct uv_loop_s;
struct cg_config;
struct cg_metrics;

typedef struct cg_store cg_store;

enum cg_script {
    CG_SCRIPT_CHAT = 0,    /* a batch of sends and confirmations (chat.lua);
                            * only through cg_store_chat_op() */
    CG_SCRIPT_FETCH,       /* read pending (init) or history (sync) after id */
    CG_SCRIPT_PENDING,     /* size and oldest time of one pending inbox (metrics) */
    CG_SCRIPT_PENDING_ADMIN, /* the backend API's page and purge of one inbox */
    CG_SCRIPT_MAX,
};

/* ---- replies ---------------------------------------------------------
 * What Redis answered, as a borrowed view: zero-copy over the client
 * library's own reply object, which is freed when the callback it was
 * passed to returns. So a reply, its elements and its strings are valid
 * only during that callback: copy out what you keep, never the pointers.
 * Every accessor takes NULL (and answers as for no reply), so element
 * lookups chain without checks. */
struct cg_store_reply;

/* Numbered as hiredis numbers them, so logged type numbers read the same. */
enum cg_store_reply_type {
    CG_STORE_REPLY_NONE    = 0,    /* no reply (NULL) */
    CG_STORE_REPLY_STRING  = 1,    /* bulk string */
    CG_STORE_REPLY_ARRAY   = 2,
    CG_STORE_REPLY_INTEGER = 3,
    CG_STORE_REPLY_NIL     = 4,
    CG_STORE_REPLY_STATUS  = 5,    /* simple string: "OK", "QUEUED" */
    CG_STORE_REPLY_ERROR   = 6,    /* "-ERR ...", "-NOSCRIPT ..." */
};

enum cg_store_reply_type cg_store_reply_type(const struct cg_store_reply *r);

/* An INTEGER's value; 0 for any other type. */
long long cg_store_reply_integer(const struct cg_store_reply *r);

/* The bytes of a STRING, STATUS or ERROR, NUL-terminated (a STRING may
 * also hold NULs: use *len), with *len set when len is not NULL; NULL and
 * *len 0 for any other type. */
const char *cg_store_reply_str(const struct cg_store_reply *r, size_t *len);

/* An ARRAY's number of elements; 0 for any other type. */
size_t cg_store_reply_count(const struct cg_store_reply *r);

/* Element i of an ARRAY (borrowed like r); NULL when i is out of range or
 * r is no array. */
const struct cg_store_reply *cg_store_reply_element(const struct cg_store_reply *r,
                                                    size_t i);

/* For a command or script, reply is NULL iff err < 0 (a subscription's
 * confirmation never has one). A Redis error reply (CG_STORE_REPLY_ERROR) is
 * passed through with err == 0 except NOSCRIPT, which the store handles by
 * loading the script and retrying once. reply is valid only until the
 * callback returns (see "replies" above). */
typedef void (*cg_store_reply_cb)(const struct cg_store_reply *reply, int err, void *data);

/* A payload arrived on channel cg:u:<uid>. payload is borrowed. */
typedef void (*cg_store_push_cb)(uint64_t uid, const char *payload, size_t len,
                                 void *data);

/* The store became ready (connected, scripts loaded, channels subscribed)
 * or stopped being ready.
 *
 * ready == 1 fires when every command connection is up with every script
 * loaded AND the subscriber connection is up with every channel of the set
 * subscribed again; ready == 0 fires when any connection is lost. So
 * ready == 1 may follow a 0 after any reconnect: pushes published while the
 * subscriber was away were missed (the messages are safe in the pending
 * inboxes), and a caller that holds live sessions should read their pending
 * messages again (init). cg_store_ready() reports the command side only.
 * While one command connection is down, only the requests of its shard fail
 * (CG_E_STORE, at once or through the callback for those in flight); the
 * other shards keep working. */
typedef void (*cg_store_state_cb)(int ready, void *data);

/* Create the store and start connecting (asynchronously; the first attempt
 * happens on the next loop iteration). cfg and metrics must outlive it. */
int cg_store_create(struct uv_loop_s *loop, const struct cg_config *cfg,
                    struct cg_metrics *metrics, cg_store **out);

void cg_store_set_push_cb(cg_store *st, cg_store_push_cb cb, void *data);
void cg_store_set_state_cb(cg_store *st, cg_store_state_cb cb, void *data);

/* Close every connection. Every outstanding callback is called with
 * CG_E_CLOSED before close_cb (may be NULL) fires; free happens after.
 * Call it once; it may be called from inside any store callback. No state
 * callback fires once it was called. */
void cg_store_close(cg_store *st, void (*close_cb)(void *data), void *data);

/* 1 when every command connection is up and every script is loaded. */
int cg_store_ready(const cg_store *st);

/* Number of commands sent and not yet answered. */
size_t cg_store_inflight(const cg_store *st);

/* Queue one operation of the chat script on the command connection of
 * shard_key: argv[0..nkeys) are its keys, argv[nkeys] its name ("send",
 * "recive"), the rest its arguments, as chat.lua defines them. cb gets
 * this operation's own reply (its element of the batch's reply: an array,
 * or an error reply when this operation or the whole batch failed). Sent
 * with the other operations of this loop turn (see the top). Returns
 * CG_E_STORE at once when that connection is not up, CG_E_CLOSED once
 * closing, CG_E_INVAL, CG_E_NOMEM. */
int cg_store_chat_op(cg_store *st, uint64_t shard_key, int nkeys, int argc,
                     const char **argv, const size_t *argvlen,
                     cg_store_reply_cb cb, void *data);

/* EVALSHA script with nkeys keys followed by the rest of argv (argc items
 * in all), on the command connection of shard_key (shard_key % N). Requests
 * with the same shard_key are answered in the order they were submitted
 * (see the top). Returns CG_E_STORE at once when that connection is not up.
 * Pass the uid whose {u:<uid>} keys the script touches. */
int cg_store_eval_keyed(cg_store *st, uint64_t shard_key, enum cg_script script,
                        int nkeys, int argc, const char **argv, const size_t *argvlen,
                        cg_store_reply_cb cb, void *data);

/* cg_store_eval_keyed() with shard_key 0. */
int cg_store_eval(cg_store *st, enum cg_script script, int nkeys, int argc,
                  const char **argv, const size_t *argvlen,
                  cg_store_reply_cb cb, void *data);

/* Any other command (GET, SET, HGETALL, INCR, PUBLISH, ...), on shard 0:
 * plain commands keep their order among themselves. Not for
 * (P)SUBSCRIBE/MONITOR, and not for commands that may legitimately take
 * longer than redis_timeout_ms (BLPOP ...): the command deadline would drop
 * the connection. Returns CG_E_STORE at once when shard 0 is down, CG_E_CLOSED
 * once closing, CG_E_NOMEM. */
int cg_store_command(cg_store *st, int argc, const char **argv,
                     const size_t *argvlen, cg_store_reply_cb cb, void *data);

/* Subscribe to cg:u:<uid>; cb(reply=NULL, err=0) fires once the
 * subscription is confirmed by Redis (or with err < 0 if the store closes
 * first). Subscribing an already subscribed uid confirms at once (on the
 * next loop turn). The store keeps the set and re-subscribes after a
 * reconnect. cb may be NULL. */
int cg_store_subscribe(cg_store *st, uint64_t uid, cg_store_reply_cb cb, void *data);
/* Details of the two above: cg_store_subscribe returns CG_E_STORE while the
 * subscriber connection is down (cb is not called, the uid is not added).
 * A confirmation still due when that connection drops fires cb with
 * CG_E_STORE on the next loop turn, and a uid that had never been confirmed
 * leaves the set with it (subscribe again later); a uid confirmed before
 * stays in the set and is subscribed again after the reconnect.
 * Unsubscribing a uid whose confirmation is still due fires its callbacks
 * with CG_E_CLOSED on the next loop turn. */
void cg_store_unsubscribe(cg_store *st, uint64_t uid);

/* ---- deferred completions --------------------------------------------
 * The store's callbacks follow libuv's rule (STYLE.md 3): a callback never
 * runs inside the call that asked for it. A caller above the store that
 * has its answer at once (a request refused before it reached Redis) keeps
 * the same rule by deferring that answer to the next turn of the store's
 * loop. The node is the caller's, embedded in its request, so deferring
 * allocates nothing; it must stay where it is until its callback ran. */
struct cg_store_defer;

/* err is 0 on the next loop turn, or CG_E_CLOSED when cg_store_close() came
 * first (the callback then runs from inside cg_store_close(), as every
 * other outstanding callback does). */
typedef void (*cg_store_defer_cb)(struct cg_store_defer *d, int err);

struct cg_store_defer {
    struct cg_store_defer *next;     /* the store's */
    cg_store_defer_cb      cb;
};

/* Call cb(d, 0) on the next loop turn, after what was deferred before it.
 * Returns 0, or CG_E_CLOSED once cg_store_close() was called (cb will not
 * run). */
int cg_store_defer(cg_store *st, struct cg_store_defer *d, cg_store_defer_cb cb);

/* The Lua source of a script (for tests that run it elsewhere, e.g. on a
 * Redis Cluster). */
const char *cg_store_script_source(enum cg_script script);

/* ---- key schema ------------------------------------------------------
 * The per-user keys listed at the top are "{u:<uid>}:<suffix>" and the
 * push channel is "cg:u:<uid>". Build them only with these helpers so that
 * chat.c, auth.c and the scripts agree. */

#define CG_STORE_CHANNEL_PREFIX "cg:u:"
/* Enough for "{u:18446744073709551615}:pending" and any suffix above. */
#define CG_STORE_KEY_MAX 48

/* Write "{u:<uid>}:<suffix>" (e.g. "{u:42}:pending") into buf (cap bytes,
 * NUL-terminated). Returns its length, or CG_E_INVAL if it does not fit. */
int cg_store_key(char *buf, size_t cap, uint64_t uid, const char *suffix);

/* Write the push channel "cg:u:<uid>" into buf. Returns its length, or
 * CG_E_INVAL if it does not fit. */
int cg_store_channel(char *buf, size_t cap, uint64_t uid);

#endif
