/* config_print.c - --help and --print-config, both generated from the
 * option table (config.c). */
#include "fmacros.h"

#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/config_internal.h"

/* ------------------------------------------------------------------------ */
/* --help and the dump                                                       */
/* ------------------------------------------------------------------------ */

/* Write s as a JSON string. check_text() let only UTF-8 without control
 * characters in, so quotes and backslashes are all that need escaping. */
static void
put_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* Print the words of s indented, in lines of at most width columns (a
 * longer word gets a line of its own). */
static void
put_wrapped(FILE *out, const char *s, int indent, int width)
{
    int col = 0;

    s += strspn(s, " ");
    while (*s != '\0') {
        int w = (int)strcspn(s, " ");

        if (col > indent && col + 1 + w > width) {
            fputc('\n', out);
            col = 0;
        }
        if (col == 0)
            col = fprintf(out, "%*s", indent, "");
        else
            col += fputc(' ', out) != EOF;
        col += fprintf(out, "%.*s", w, s);
        s += w;
        s += strspn(s, " ");
    }
    fputc('\n', out);
}

void
cg_config_help(FILE *out, const char *argv0)
{
    static const char *const metavar[] = {
        [OPT_STRING] = " TEXT", [OPT_INT] = " N", [OPT_BOOL] = " [BOOL]",
    };
    char flag[64], env[64], desc[1024];

    fprintf(out,
            "usage: %s [--config FILE] [--OPTION VALUE | --OPTION=VALUE]...\n"
            "\n"
            "Every option can also be set as CHATGATE_<OPTION> in the environment,\n"
            "or as \"option\": value in the JSON object of the --config file.\n"
            "Precedence: built-in default < config file < environment < flag.\n"
            "Booleans take true/false/1/0/yes/no/on/off; a bare --flag is true.\n"
            "\n"
            "  -h, --help        print this help and exit\n"
            "  --config FILE     read options from a JSON file\n"
            "  --print-config    print the effective configuration as JSON and exit\n"
            "\n",
            argv0 != NULL ? argv0 : "chatgate");
    for (size_t i = 0; i < cg_config_nopts; i++) {
        const struct opt *o = &cg_config_options[i];

        cfg_spell(o->name, 0, flag, sizeof flag);
        cfg_spell(o->name, 1, env, sizeof env);
        fprintf(out, "  %s%s%s--%s%s  (CHATGATE_%s)\n",
                o->alias ? "--" : "", o->alias ? o->alias : "", o->alias ? ", " : "",
                flag, metavar[o->type], env);
        if (o->type == OPT_STRING)
            snprintf(desc, sizeof desc, "%s; default \"%s\"", o->help, o->def);
        else if (o->type == OPT_BOOL)
            snprintf(desc, sizeof desc, "%s; default %s", o->help,
                     strcmp(o->def, "0") != 0 ? "true" : "false");
        else
            snprintf(desc, sizeof desc, "%s; default %s, range %lld..%lld", o->help,
                     o->def, (long long)o->min, (long long)o->max);
        put_wrapped(out, desc, 6, 79);
    }
}

void
cg_config_dump(const struct cg_config *cfg, FILE *out, int redact)
{
    char tmp[4200];

    fputs("{\n", out);
    for (size_t i = 0; i < cg_config_nopts; i++) {
        const struct opt *o = &cg_config_options[i];
        const void *p = cfg_cfield(cfg, o);

        fprintf(out, "  \"%s\": ", o->name);
        if (o->type == OPT_STRING) {
            const char *v = *(char *const *)p;

            put_json_string(out, cfg_shown(o, v != NULL ? v : "", redact, tmp, sizeof tmp));
        } else if (o->type == OPT_BOOL) {
            fputs(*(const int *)p ? "true" : "false", out);
        } else {
            fprintf(out, "%lld", (long long)*(const int64_t *)p);
        }
        fputs(i + 1 < cg_config_nopts ? ",\n" : "\n", out);
    }
    fputs("}\n", out);
}
