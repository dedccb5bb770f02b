/* store_reply.c - struct cg_store_reply (store.h): the store's own reply
 * type, so that nothing above the store includes hiredis.
 *
 * Zero-copy: a struct cg_store_reply pointer is the hiredis redisReply
 * pointer itself (the type is never defined, only converted back here), so
 * handing a reply to a callback costs nothing and a view lives exactly as
 * long as hiredis keeps the reply: until the callback returns. */
#include "fmacros.h"

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "store/store.h"
#include "store/store_internal.h"

/* The numbering store.h promises. */
_Static_assert(CG_STORE_REPLY_STRING == REDIS_REPLY_STRING &&
               CG_STORE_REPLY_ARRAY == REDIS_REPLY_ARRAY &&
               CG_STORE_REPLY_INTEGER == REDIS_REPLY_INTEGER &&
               CG_STORE_REPLY_NIL == REDIS_REPLY_NIL &&
               CG_STORE_REPLY_STATUS == REDIS_REPLY_STATUS &&
               CG_STORE_REPLY_ERROR == REDIS_REPLY_ERROR,
               "enum cg_store_reply_type follows hiredis's REDIS_REPLY_*");

static const redisReply *
raw(const struct cg_store_reply *r)
{
    return (const redisReply *)(const void *)r;
}

enum cg_store_reply_type
cg_store_reply_type(const struct cg_store_reply *r)
{
    return r ? (enum cg_store_reply_type)raw(r)->type : CG_STORE_REPLY_NONE;
}

long long
cg_store_reply_integer(const struct cg_store_reply *r)
{
    return r && raw(r)->type == REDIS_REPLY_INTEGER ? raw(r)->integer : 0;
}

const char *
cg_store_reply_str(const struct cg_store_reply *r, size_t *len)
{
    int t = r ? raw(r)->type : 0;

    if (t != REDIS_REPLY_STRING && t != REDIS_REPLY_STATUS && t != REDIS_REPLY_ERROR) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = raw(r)->len;
    return raw(r)->str;
}

size_t
cg_store_reply_count(const struct cg_store_reply *r)
{
    return r && raw(r)->type == REDIS_REPLY_ARRAY ? raw(r)->elements : 0;
}

const struct cg_store_reply *
cg_store_reply_element(const struct cg_store_reply *r, size_t i)
{
    if (i >= cg_store_reply_count(r))
        return NULL;
    return cg_store__reply(raw(r)->element[i]);
}
