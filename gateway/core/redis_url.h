/* redis_url.h - the redis_url option parsed into its parts.
 *
 *   redis://[[user]:password@]host[:port][/db]     host may be [v6]
 *   unix://[[user]:password@]/path[?db=N][&password=P]
 *
 * One grammar, one parser: the config layer calls it to check the option
 * (and to say what is wrong), the store to connect. Nothing here touches
 * Redis. */
#ifndef CHATGATE_REDIS_URL_H
#define CHATGATE_REDIS_URL_H

#include <stddef.h>

struct cg_redis_url {
    char *host;              /* TCP host, NULL for a unix socket */
    int   port;
    char *path;              /* unix socket path, NULL for TCP */
    char *user;              /* ACL user name or NULL */
    char *pass;              /* password or NULL */
    int   db;
    char  shown[300];        /* for logs: password left out */
};

/* Parse s into u (port 6379 and db 0 unless given; %XX decoded in the user,
 * password and path). Returns 0, CG_E_INVAL (malformed, or s NULL; why, if
 * not NULL, says what is wrong in at most cap bytes) or CG_E_NOMEM; on
 * failure u holds nothing to clean up. */
int  cg_redis_url_parse(const char *s, struct cg_redis_url *u, char *why, size_t cap);

/* Free what cg_redis_url_parse() allocated and zero u. */
void cg_redis_url_cleanup(struct cg_redis_url *u);

#endif
