/* config_test.h - setting options of a hand-made struct cg_config the way
 * cg_config_load() would, for tests that build their config field by
 * field. Header-only: the test links chatgate_core, which does the work. */
#ifndef CG_TEST_CONFIG_TEST_H
#define CG_TEST_CONFIG_TEST_H

#include <stdio.h>
#include <stdlib.h>

#include "core/config.h"
#include "core/redis_url.h"

/* The parsed form of redis_url (cfg->redis, which the store connects
 * with), from url; cfg->redis_url, the text, stays the caller's. Aborts
 * when url does not parse: the test itself is wrong. A config of
 * cg_config_init() frees it with the rest; a hand-made one calls
 * cg_test_redis_url_done(). */
static inline void
cg_test_redis_url(struct cg_config *cfg, const char *url)
{
    char why[96];

    cg_redis_url_cleanup(&cfg->redis);
    if (cg_redis_url_parse(url, &cfg->redis, why, sizeof why) < 0) {
        fprintf(stderr, "test redis_url %s: %s\n", url, why);
        abort();
    }
}

static inline void
cg_test_redis_url_done(struct cg_config *cfg)
{
    cg_redis_url_cleanup(&cfg->redis);
}

#endif
