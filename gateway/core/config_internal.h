/* config_internal.h - what the files of the configuration share: the
 * option table's row type and the table itself (config.c), the per-option
 * checks and typed-value parsers (config_values.c), and what --help and
 * --print-config need (config_print.c). Not for use outside core/config*. */
#ifndef CG_CONFIG_INTERNAL_H
#define CG_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

enum opt_type { OPT_STRING, OPT_INT, OPT_BOOL };

#define OPT_SECRET_URL 0x1u          /* a URL whose userinfo is redacted */
#define OPT_SECRET     0x2u          /* a secret: shown as "***" (an "@file"
                                        value as it is: a path) */

/* Extra rule for a string value: 0, or < 0 with the reason in why.
 * CG_E_NOMEM is reported as out of memory, anything else as a bad value. */
typedef int (*opt_check_fn)(const char *v, char *why, size_t cap);
/* Parse a string value into its typed field (typed points at it). On
 * success the old typed value is released and replaced; on failure it is
 * left as it was and the reason is written into why. */
typedef int (*opt_parse_fn)(const char *v, void *typed, char *why, size_t cap);
/* Release a typed field's value (cg_config_cleanup). */
typedef void (*opt_free_fn)(void *typed);

struct opt {
    const char    *name;     /* struct field, JSON key; flag and env derive from it */
    enum opt_type  type;
    size_t         off;      /* offsetof(struct cg_config, name) */
    const char    *def;      /* default, spelled as a flag value */
    int64_t        min, max; /* int: value bounds; string: length bounds in bytes */
    const char    *help;     /* one line for --help */
    opt_check_fn   check;    /* strings: extra rule, or NULL */
    const char    *alias;    /* an extra flag name without "--", or NULL */
    unsigned       flags;
    opt_parse_fn   parse;    /* strings: the typed value's parser, or NULL */
    opt_free_fn    tfree;    /* ... and its release, or NULL */
    size_t         toff;     /* offsetof(struct cg_config, <typed field>) */
};


/* The table (config.c), one row per option. */
extern const struct opt cg_config_options[];
extern const size_t     cg_config_nopts;

/* The field of option o in cfg. */
static inline const void *
cfg_cfield(const struct cg_config *cfg, const struct opt *o)
{
    return (const char *)cfg + o->off;
}

/* "max_frame_bytes" -> "max-frame-bytes" (upper 0) or "MAX_FRAME_BYTES". */
void cfg_spell(const char *name, int upper, char *out, size_t cap);

/* Per-option checks and typed-value parsers (config_values.c); each writes
 * its reason into why on failure and returns < 0 (CG_E_NOMEM when memory
 * ran out). */
int  cfg_parse_listen(const char *v, void *typed, char *why, size_t cap);
int  cfg_parse_metrics_listen(const char *v, void *typed, char *why, size_t cap);
int  cfg_check_base_path(const char *v, char *why, size_t cap);
int  cfg_parse_origins(const char *v, void *typed, char *why, size_t cap);
void cfg_free_origins(void *typed);
int  cfg_check_node_id(const char *v, char *why, size_t cap);
int  cfg_parse_log_level(const char *v, void *typed, char *why, size_t cap);
int  cfg_parse_proxies(const char *v, void *typed, char *why, size_t cap);
void cfg_free_proxies(void *typed);
int  cfg_parse_redis_url(const char *v, void *typed, char *why, size_t cap);
void cfg_free_redis_url(void *typed);
int  cfg_parse_api_keys(const char *v, void *typed, char *why, size_t cap);
void cfg_free_api_keys(void *typed);
int  cfg_parse_jwt_secret(const char *v, void *typed, char *why, size_t cap);
void cfg_free_jwt_secret(void *typed);
int  cfg_parse_jwt_pkey(const char *v, void *typed, char *why, size_t cap);
void cfg_free_jwt_pkey(void *typed);
int  cfg_parse_jwt_jwks(const char *v, void *typed, char *why, size_t cap);
void cfg_free_jwt_jwks(void *typed);
int  cfg_parse_jwt_alg(const char *v, void *typed, char *why, size_t cap);

/* The value to show for a string option in errors and dumps: a secret URL
 * with its passwords replaced by "***" when redact is set (tmp, cap bytes,
 * holds the copy). */
const char *cfg_shown(const struct opt *o, const char *v, int redact, char *tmp,
                      size_t cap);

#endif
