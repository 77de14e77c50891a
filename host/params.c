/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"
#include "params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A schema could hold any number of choices; bound the walk so a list
 * missing its NULL terminator cannot run away. */
#define AMG_MAX_CHOICES 1024

const amg_param_spec *amg_param_spec_at(const amg_strategy *s, size_t i)
{
    /* the plugin's stride, not ours: a plugin built against a later minor
     * has larger entries, and we read only the 0.1 members of each */
    size_t stride = s->params[0].struct_size;

    return (const amg_param_spec *)((const char *)s->params + i * stride);
}

static const char *type_noun(int32_t type)
{
    switch (type) {
    case AMG_PARAM_F64: return "a number";
    case AMG_PARAM_I64: return "an integer";
    case AMG_PARAM_BOOL: return "true or false";
    case AMG_PARAM_STR: return "a string";
    default: return "of an unknown type";
    }
}

static int type_mismatch(const amg_param_spec *sp, int32_t given,
                         amg_err *err)
{
    return amg_err_set(err, AMG_EINVAL, "'%s' must be %s, got %s", sp->name,
                       type_noun(sp->type), type_noun(given));
}

static int below_min(const amg_param_spec *sp, double v)
{
    if (!(sp->flags & AMG_PARAM_HAS_MIN))
        return 0;
    return (sp->flags & AMG_PARAM_MIN_EXCLUSIVE) ? !(v > sp->min)
                                                 : !(v >= sp->min);
}

static int above_max(const amg_param_spec *sp, double v)
{
    if (!(sp->flags & AMG_PARAM_HAS_MAX))
        return 0;
    return (sp->flags & AMG_PARAM_MAX_EXCLUSIVE) ? !(v < sp->max)
                                                 : !(v <= sp->max);
}

static int range_error(const amg_param_spec *sp, double v, amg_err *err)
{
    unsigned f = sp->flags;
    int lo_x = (f & AMG_PARAM_MIN_EXCLUSIVE) != 0;
    int hi_x = (f & AMG_PARAM_MAX_EXCLUSIVE) != 0;

    if ((f & AMG_PARAM_HAS_MIN) && (f & AMG_PARAM_HAS_MAX))
        return amg_err_set(err, AMG_ERANGE,
                           "'%s' must be in %c%g, %g%c, got %g", sp->name, lo_x ? '(' : '[', sp->min, sp->max,
                           hi_x ? ')' : ']', v);
    if (f & AMG_PARAM_HAS_MIN)
        return amg_err_set(err, AMG_ERANGE, "'%s' must be %s %g, got %g",
                           sp->name, lo_x ? ">" : ">=", sp->min, v);
    return amg_err_set(err, AMG_ERANGE, "'%s' must be %s %g, got %g", sp->name,
                       hi_x ? "<" : "<=", sp->max, v);
}

int amg_param_check_number(const amg_param_spec *sp, double v, amg_err *err)
{
    if (isnan(v))
        return amg_err_set(err, AMG_ERANGE, "'%s' must be %s, got nan",
                           sp->name, type_noun(sp->type));
    if (sp->type == AMG_PARAM_BOOL) {
        if (v != 0.0 && v != 1.0)
            return amg_err_set(err, AMG_ERANGE,
                               "'%s' must be true or false (0 or 1), got %g",
                               sp->name, v);
        return AMG_OK;
    }
    /* 2^63 is the first double past INT64_MAX */
    if (sp->type == AMG_PARAM_I64 &&
        (v != floor(v) || v < -9223372036854775808.0 ||
         v >= 9223372036854775808.0))
        return amg_err_set(err, AMG_ERANGE, "'%s' must be an integer, got %g",
                           sp->name, v);
    if (below_min(sp, v) || above_max(sp, v))
        return range_error(sp, v, err);
    return AMG_OK;
}

int amg_param_check_choice(const amg_param_spec *sp, const char *v,
                           amg_err *err)
{
    char list[512];
    size_t i, len = 0;

    if (!sp->choices)
        return AMG_OK;
    for (i = 0; i < AMG_MAX_CHOICES && sp->choices[i]; i++)
        if (strcmp(sp->choices[i], v) == 0)
            return AMG_OK;
    list[0] = '\0';
    for (i = 0; i < AMG_MAX_CHOICES && sp->choices[i] && len < sizeof(list);
         i++) {
        int n = snprintf(list + len, sizeof(list) - len, "%s'%s'",
                         i ? ", " : "", sp->choices[i]);
        if (n < 0)
            break;
        len += (size_t)n;
    }
    return amg_err_set(err, AMG_EINVAL, "'%s' must be one of %s, got '%s'",
                       sp->name, list, v);
}

static const amg_param_spec *spec_of(const amg_params *p, size_t i)
{
    return (const amg_param_spec *)((const char *)p->specs + i * p->stride);
}

static int set_default(amg_param_value *v, const amg_param_spec *sp,
                       amg_err *err)
{
    switch (sp->type) {
    case AMG_PARAM_F64:
        v->f = sp->def;
        break;
    case AMG_PARAM_I64:
        v->i = (int64_t)sp->def;
        break;
    case AMG_PARAM_BOOL:
        v->i = sp->def != 0.0;
        break;
    case AMG_PARAM_STR:
        if (!sp->def_str)
            return AMG_OK; /* no default: stays unset */
        v->s = amg_strdup(sp->def_str);
        if (!v->s)
            return amg_err_set(err, AMG_ENOMEM,
                               "cannot set the default of '%s': out of memory",
                               sp->name);
        break;
    default:
        return amg_err_set(err, AMG_EPLUGIN, "'%s' has unknown type %d",
                           sp->name, (int)sp->type);
    }
    v->is_set = 1;
    return AMG_OK;
}

int amg_params_init(amg_params *p, const amg_strategy *s, int32_t scope,
                    amg_err *err)
{
    size_t i;
    int rc = AMG_OK;

    memset(p, 0, sizeof(*p));
    p->scope = scope;
    if (s->n_params == 0)
        return AMG_OK;
    if (!s->params)
        return amg_err_set(err, AMG_EPLUGIN,
                           "strategy '%s' lists %u parameters but no schema",
                           s->id, (unsigned)s->n_params);
    p->specs = s->params;
    p->stride = s->params[0].struct_size;
    if (p->stride < AMG_PARAM_SPEC_MIN_SIZE)
        return amg_err_set(err, AMG_EPLUGIN,
                           "strategy '%s': parameter entries of %zu bytes are "
                           "smaller than ABI 0.1's %zu",
                           s->id, p->stride, (size_t)AMG_PARAM_SPEC_MIN_SIZE);
    p->values = calloc(s->n_params, sizeof(*p->values));
    if (!p->values)
        return amg_err_set(err, AMG_ENOMEM,
                           "cannot hold the parameters of '%s': out of memory",
                           s->id);
    p->n = s->n_params;
    for (i = 0; i < p->n; i++) {
        const amg_param_spec *sp = spec_of(p, i);

        p->values[i].type = sp->type;
        if (sp->scope != scope || (sp->flags & AMG_PARAM_REQUIRED))
            continue;
        rc = set_default(&p->values[i], sp, err);
        if (rc)
            goto fail;
    }
    return AMG_OK;
fail:
    amg_params_free(p);
    return rc;
}

void amg_params_free(amg_params *p)
{
    size_t i;

    if (!p)
        return;
    for (i = 0; i < p->n; i++)
        free(p->values[i].s);
    free(p->values);
    memset(p, 0, sizeof(*p));
}

int amg_params_index(const amg_params *p, const char *name)
{
    size_t i;

    if (!p || !name)
        return -1;
    for (i = 0; i < p->n; i++) {
        const amg_param_spec *sp = spec_of(p, i);
        if (sp->name && strcmp(sp->name, name) == 0)
            return (int)i;
    }
    return -1;
}

/* The entry for name, or NULL with AMG_ENOTFOUND recorded. */
static amg_param_value *lookup(amg_params *p, const char *name,
                               const amg_param_spec **sp, amg_err *err)
{
    int i = amg_params_index(p, name);

    if (i < 0) {
        amg_err_set(err, AMG_ENOTFOUND, "unknown parameter '%s'",
                    name ? name : "(null)");
        return NULL;
    }
    *sp = spec_of(p, (size_t)i);
    return &p->values[i];
}

int amg_params_set_f64(amg_params *p, const char *name, double v,
                       amg_err *err)
{
    const amg_param_spec *sp;
    amg_param_value *pv = lookup(p, name, &sp, err);
    int rc;

    if (!pv)
        return AMG_ENOTFOUND;
    /* a YAML number may feed an integer parameter when it is integral */
    if (sp->type != AMG_PARAM_F64 && sp->type != AMG_PARAM_I64)
        return type_mismatch(sp, AMG_PARAM_F64, err);
    rc = amg_param_check_number(sp, v, err);
    if (rc)
        return rc;
    if (sp->type == AMG_PARAM_I64)
        pv->i = (int64_t)v;
    else
        pv->f = v;
    pv->is_set = 1;
    return AMG_OK;
}

int amg_params_set_i64(amg_params *p, const char *name, int64_t v,
                       amg_err *err)
{
    const amg_param_spec *sp;
    amg_param_value *pv = lookup(p, name, &sp, err);

    if (!pv)
        return AMG_ENOTFOUND;
    if (sp->type == AMG_PARAM_F64)
        return amg_params_set_f64(p, name, (double)v, err);
    if (sp->type != AMG_PARAM_I64)
        return type_mismatch(sp, AMG_PARAM_I64, err);
    /* ranges are doubles; the integer itself is stored exactly */
    if (below_min(sp, (double)v) || above_max(sp, (double)v))
        return range_error(sp, (double)v, err);
    pv->i = v;
    pv->is_set = 1;
    return AMG_OK;
}

int amg_params_set_bool(amg_params *p, const char *name, int v, amg_err *err)
{
    const amg_param_spec *sp;
    amg_param_value *pv = lookup(p, name, &sp, err);

    if (!pv)
        return AMG_ENOTFOUND;
    if (sp->type != AMG_PARAM_BOOL)
        return type_mismatch(sp, AMG_PARAM_BOOL, err);
    if (v != 0 && v != 1)
        return amg_err_set(err, AMG_ERANGE,
                           "'%s' must be true or false (0 or 1), got %d",
                           sp->name, v);
    pv->i = v;
    pv->is_set = 1;
    return AMG_OK;
}

int amg_params_set_str(amg_params *p, const char *name, const char *v,
                       amg_err *err)
{
    const amg_param_spec *sp;
    amg_param_value *pv = lookup(p, name, &sp, err);
    char *copy;
    int rc;

    if (!pv)
        return AMG_ENOTFOUND;
    if (sp->type != AMG_PARAM_STR)
        return type_mismatch(sp, AMG_PARAM_STR, err);
    if (!v)
        return amg_err_set(err, AMG_EINVAL, "'%s' must be a string, got none",
                           sp->name);
    rc = amg_param_check_choice(sp, v, err);
    if (rc)
        return rc;
    copy = amg_strdup(v);
    if (!copy)
        return amg_err_set(err, AMG_ENOMEM, "cannot set '%s': out of memory",
                           sp->name);
    free(pv->s);
    pv->s = copy;
    pv->is_set = 1;
    return AMG_OK;
}

int amg_params_check_required(const amg_params *p, amg_err *err)
{
    size_t i;

    for (i = 0; i < p->n; i++) {
        const amg_param_spec *sp = spec_of(p, i);

        if (sp->scope == p->scope && (sp->flags & AMG_PARAM_REQUIRED) &&
            !p->values[i].is_set)
            return amg_err_set(err, AMG_EINVAL,
                               "missing required %sparameter '%s'",
                               p->scope == AMG_SCOPE_PER_MODEL ? "per-model "
                                                               : "",
                               sp->name);
    }
    return AMG_OK;
}
