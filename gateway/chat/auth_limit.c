/* auth_limit.c - the login limit and the registration limit of auth
 * (auth.c's top comment has both rules): fixed windows counted in Redis
 * with INCR and PEXPIRE .. NX, the refusal with Retry-After from PTTL, and
 * the login limit's give-back of counts that were not failures. */
#include "fmacros.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <uv.h>

#include "chat/auth.h"
#include "chat/auth_internal.h"
#include "core/common.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/proxies.h"
#include "store/store.h"

/* ---- login limit (see the top) ------------------------------------------------ */

void
limit_key(const struct auth_op *op, enum limit_bucket b, char *buf, size_t cap)
{
    switch (b) {
    case LB_ACCOUNT_ADDR: snprintf(buf, cap, "cg:login:ua:%s:%s", op->lname, op->addr); break;
    case LB_ADDR:         snprintf(buf, cap, "cg:login:a:%s", op->addr); break;
    default:              snprintf(buf, cap, "cg:login:u:%s", op->lname); break;
    }
}

/* PEXPIRE .. NX needs Redis 7.0; on an older one the keys would never
 * expire, so say so loudly. */
void
on_expire_reply(const struct cg_store_reply *r, int err, void *data)
{
    (void)data;
    if (err == 0 && cg_store_reply_type(r) == CG_STORE_REPLY_ERROR)
        cg_log(CG_LOG_ERROR, "login limit: PEXPIRE NX failed (%s): its keys will not "
               "expire; chatgate needs Redis 7.0 or newer", cg_store_reply_str(r, NULL));
}

/* Send a command whose reply only matters when it is an error. */
void
send_quiet(cg_auth *a, int argc, const char **argv, cg_store_reply_cb cb)
{
    size_t lens[4];

    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (cg_store_command(a->store, argc, argv, lens, cb, NULL) < 0)
        cg_log(CG_LOG_DEBUG, "login limit: %s %s not sent (store down)", argv[0], argv[1]);
}

/* Start the fixed window of limit key k, window_s long, if it has none yet
 * (the INCR just made it): the one place every limit's window starts. */
void
window_start(cg_auth *a, const char *k, int64_t window_s)
{
    char ms[24];

    snprintf(ms, sizeof ms, "%lld", (long long)window_s * 1000);
    send_quiet(a, 4, (const char *[]){ "PEXPIRE", k, ms, "NX" }, on_expire_reply);
}

/* Start bucket b's window (see window_start). */
void
limit_expire(struct auth_op *op, enum limit_bucket b, const char *k)
{
    window_start(op->a, k, op->a->rules[b].window_s);
}

/* Take one count of this attempt from bucket b; its INCR reply comes to
 * step b. */
void
limit_take(struct auth_op *op, enum limit_bucket b)
{
    char k[LIMIT_KEY_MAX];

    limit_key(op, b, k, sizeof k);
    op->step = (int)b;
    if (cmd_sent(op, 2, (const char *[]){ "INCR", k }) == 0)
        limit_expire(op, b, k);
}

/* Give back the counts op took: the attempt did not fail on the password
 * (it succeeded, was refused by a later bucket, or Redis failed). A DECR
 * that finds the window ended makes a key of -1, which the PEXPIRE .. NX
 * after it lets expire like any other: one extra attempt in that window. */
void
limit_give_back(struct auth_op *op)
{
    char k[LIMIT_KEY_MAX];

    if (op->a->closing) {             /* the store may be gone */
        op->reserved = 0;
        return;
    }
    for (int b = 0; b < op->reserved; b++) {
        limit_key(op, (enum limit_bucket)b, k, sizeof k);
        send_quiet(op->a, 2, (const char *[]){ "DECR", k }, NULL);
        limit_expire(op, (enum limit_bucket)b, k);
    }
    op->reserved = 0;
}

/* Bucket b refused the attempt: log the first refusal of a window (the
 * rest at debug: a flood must not flood the log), then ask when the
 * window ends. */
static void
limit_refuse(struct auth_op *op, enum limit_bucket b)
{
    const struct limit_rule *rule = &op->a->rules[b];
    enum cg_log_level lvl = op->count == rule->max + 1 ? CG_LOG_WARN : CG_LOG_DEBUG;
    char k[LIMIT_KEY_MAX];

    op->a->metrics->login_limited++;
    cg_log(lvl, "login for %s from %s refused: more than %lld failed logins in %lld s "
           "(%s); it answers 429 until the window ends", op->lname, op->addr,
           (long long)rule->max, (long long)rule->window_s, rule->option);
    limit_key(op, b, k, sizeof k);
    op->step = LOGIN_PTTL;
    op->who.retry_after_s = rule->window_s;   /* unless PTTL says better */
    cmd(op, 2, (const char *[]){ "PTTL", k });
}

/* Steps 0 .. LB_N-1 (the INCR of that bucket) and LOGIN_PTTL. */
void
step_limit(struct auth_op *op, const struct cg_store_reply *r, int err)
{
    enum limit_bucket b = (enum limit_bucket)op->step;
    char k[96];

    if (op->step == LOGIN_PTTL) {
        /* -2: the window ended meanwhile; -1 cannot happen (NX ran first) */
        long long pttl = cg_store_reply_integer(r);

        if (!no_reply(r, err) && cg_store_reply_type(r) == CG_STORE_REPLY_INTEGER &&
            pttl != -1)
            op->who.retry_after_s = pttl > 0 ? (pttl + 999) / 1000 : 1;
        return op_finish(op, CG_E_LIMIT);
    }
    if (no_reply(r, err) || cg_store_reply_type(r) != CG_STORE_REPLY_INTEGER)
        return op_finish(op, err < 0 ? err : CG_E_STORE);
    op->count = cg_store_reply_integer(r);
    if (op->count > op->a->rules[b].max)
        return limit_refuse(op, b);
    op->reserved = (int)b + 1;
    if (b + 1 < LB_N)
        return limit_take(op, (enum limit_bucket)(b + 1));
    op->step = LOGIN_NAME;
    key_name(k, sizeof k, op->lname);
    cmd(op, 2, (const char *[]){ "GET", k });
}

/* How many failed logins of one account one address can reach within one
 * login_account_window_s: every window of a narrower bucket that overlaps
 * it (one more than fit in it) lets its max through. */
static int64_t
one_address_reach(const struct limit_rule *rules)
{
    int64_t wa = rules[LB_ACCOUNT].window_s, reach = INT64_MAX;

    for (int b = LB_ACCOUNT_ADDR; b <= LB_ADDR; b++) {
        int64_t windows = (wa + rules[b].window_s - 1) / rules[b].window_s + 1;

        if (rules[b].max * windows < reach)
            reach = rules[b].max * windows;
    }
    return reach;
}

void
limit_rules_init(cg_auth *a, const struct cg_config *cfg)
{
    int64_t reach;

    a->rules[LB_ACCOUNT_ADDR] = (struct limit_rule){
        "login_account_addr_max", cfg->login_account_addr_max,
        cfg->login_account_addr_window_s };
    a->rules[LB_ADDR] = (struct limit_rule){
        "login_addr_max", cfg->login_addr_max, cfg->login_addr_window_s };
    a->rules[LB_ACCOUNT] = (struct limit_rule){
        "login_account_max", cfg->login_account_max, cfg->login_account_window_s };
    reach = one_address_reach(a->rules);
    if (reach >= cfg->login_account_max)
        cg_log(CG_LOG_WARN, "login limit: one client address can fail up to %lld logins "
               "of an account per login_account_window_s (%lld s), and "
               "login_account_max=%lld: an attacker at one address can lock the "
               "account's owner out everywhere; raise login_account_max above %lld or "
               "lower login_account_addr_max", (long long)reach,
               (long long)cfg->login_account_window_s,
               (long long)cfg->login_account_max, (long long)reach);
}

/* ---- registration limit (see the top) ----------------------------------------- */

void
reg_limit_key(const struct auth_op *op, int by_addr, char *buf, size_t cap)
{
    if (by_addr)
        snprintf(buf, cap, "cg:reg:a:%s", op->addr);
    else
        snprintf(buf, cap, "cg:reg:all");
}

/* Count this registration in the address's window (by_addr) or in the
 * window of all addresses; the INCR's reply comes to the step after. */
void
reg_limit_take(struct auth_op *op, int by_addr)
{
    char k[LIMIT_KEY_MAX];

    reg_limit_key(op, by_addr, k, sizeof k);
    op->step = by_addr ? REG_LIMIT_ADDR : REG_LIMIT_ALL;
    if (cmd_sent(op, 2, (const char *[]){ "INCR", k }) == 0)
        reg_window_start(op, by_addr, k);
}

/* Start the window of registration key k (by address or of all). */
void
reg_window_start(struct auth_op *op, int by_addr, const char *k)
{
    const struct cg_config *cfg = op->a->cfg;

    window_start(op->a, k, by_addr ? cfg->register_addr_window_s : cfg->register_window_s);
}

/* Over its window's max: refuse (asking when the window ends) and return
 * 1; else 0. */
int
reg_over_limit(struct auth_op *op, int by_addr, long long count)
{
    const struct cg_config *cfg = op->a->cfg;
    int64_t max = by_addr ? cfg->register_addr_max : cfg->register_max;
    int64_t window = by_addr ? cfg->register_addr_window_s : cfg->register_window_s;
    char k[LIMIT_KEY_MAX];

    if (count <= max)
        return 0;
    op->a->metrics->register_limited++;
    cg_log(count == max + 1 ? CG_LOG_WARN : CG_LOG_DEBUG,
           "registration of %s from %s refused: more than %lld registrations %s in "
           "%lld s (%s); it answers 429 until the window ends", op->lname, op->addr,
           (long long)max, by_addr ? "from this address" : "in all", (long long)window,
           by_addr ? "register_addr_max" : "register_max");
    reg_limit_key(op, by_addr, k, sizeof k);
    op->who.retry_after_s = window;
    op->step = REG_PTTL;
    cmd(op, 2, (const char *[]){ "PTTL", k });
    return 1;
}
