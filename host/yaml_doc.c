/* SPDX-License-Identifier: Apache-2.0 */
/*
 * yaml_doc.c - libyaml's event stream folded into an amg_ynode tree.
 *
 * The tree keeps 1-based positions (libyaml's marks are 0-based) so that the
 * pipeline checker can point at the exact key or value it rejects. Aliases
 * to scalars are copied; aliases to mappings or sequences are refused, which
 * keeps the tree a tree and makes "billion laughs" documents impossible.
 */
#include "config.h"

#include "yaml_doc.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util.h"

/* Pipelines are small; anything larger is a mistake, not a config. */
#define YAML_MAX_BYTES (16u << 20)
/* Deep enough for any real config, shallow enough to keep recursion safe
 * on hostile input. */
#define YAML_MAX_DEPTH 64
/* Each alias copies its scalar, so a few bytes of `*a` can stand for a
 * large string many times over (a "billion laughs" in scalar form): bound
 * what aliases may add in all. */
#define YAML_MAX_ALIAS_BYTES (16u << 20)

typedef struct yanchor {
    char *name;
    const amg_ynode *node;             /* in the tree being built */
} yanchor;

typedef struct ybuild {
    yaml_parser_t parser;
    const char *label;
    const char *text;
    size_t len;
    amg_err *err;
    yanchor *anchors;
    size_t n_anchors, cap_anchors;
    size_t alias_bytes;                /* copied by aliases so far */
} ybuild;

static void node_free(amg_ynode *n)
{
    size_t i;

    if (!n)
        return;
    free(n->str);
    for (i = 0; i < n->n_pairs; i++) {
        node_free(n->pairs[i].key);
        node_free(n->pairs[i].value);
    }
    free(n->pairs);
    for (i = 0; i < n->n_items; i++)
        node_free(n->items[i]);
    free(n->items);
    free(n);
}

static amg_ynode *node_new(amg_ynode_kind kind, yaml_mark_t mark)
{
    amg_ynode *n = calloc(1, sizeof(*n));

    if (n) {
        n->kind = kind;
        n->line = (int)mark.line + 1;
        n->col = (int)mark.column + 1;
    }
    return n;
}

static int at_err(ybuild *b, int status, int line, int col, const char *fmt,
                  ...) AMG_PRINTF(5, 6);

/* "label:line:col: message" */
static int at_err(ybuild *b, int status, int line, int col, const char *fmt,
                  ...)
{
    char msg[AMG_ERR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return amg_err_set(b->err, status, "%s:%d:%d: %s", b->label, line, col,
                       msg);
}

static int oom(ybuild *b)
{
    return amg_err_set(b->err, AMG_ENOMEM, "out of memory parsing '%s'",
                       b->label);
}

/* 1-based line and column of a byte offset, for reader errors, which
 * libyaml reports as an offset rather than a mark. */
static void offset_pos(const ybuild *b, size_t off, int *line, int *col)
{
    size_t i;

    *line = 1;
    *col = 1;
    for (i = 0; i < off && i < b->len; i++) {
        if (b->text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char)b->text[i] & 0xC0) != 0x80) {
            (*col)++;
        }
    }
}

/* Byte at a mark, to recognise the commonest YAML mistake (a tab used for
 * indentation), which libyaml reports only as a bad token. */
static int char_at_mark(const ybuild *b, yaml_mark_t m)
{
    return m.index < b->len ? (unsigned char)b->text[m.index] : -1;
}

static int syntax_err(ybuild *b)
{
    yaml_parser_t *p = &b->parser;
    const char *problem = p->problem ? p->problem : "invalid YAML";
    const char *hint = "";
    int line, col;

    if (p->error == YAML_MEMORY_ERROR)
        return oom(b);
    if (p->error == YAML_READER_ERROR) {
        offset_pos(b, p->problem_offset, &line, &col);
        return at_err(b, AMG_EFORMAT, line, col, "%s", problem);
    }
    line = (int)p->problem_mark.line + 1;
    col = (int)p->problem_mark.column + 1;
    if (char_at_mark(b, p->problem_mark) == '\t')
        hint = "; indent with spaces, YAML does not allow tabs there";
    if (p->context)
        return at_err(b, AMG_EFORMAT, line, col, "%s (%s)%s", problem,
                      p->context, hint);
    return at_err(b, AMG_EFORMAT, line, col, "%s%s", problem, hint);
}

static int next_event(ybuild *b, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&b->parser, ev))
        return syntax_err(b);
    return AMG_OK;
}

static int anchor_add(ybuild *b, const yaml_char_t *name, const amg_ynode *n)
{
    yanchor *grown;
    char *copy;

    if (!name)
        return AMG_OK;
    if (b->n_anchors == b->cap_anchors) {
        size_t cap = b->cap_anchors ? 2 * b->cap_anchors : 8;

        grown = realloc(b->anchors, cap * sizeof(*grown));
        if (!grown)
            return oom(b);
        b->anchors = grown;
        b->cap_anchors = cap;
    }
    copy = amg_strdup((const char *)name);
    if (!copy)
        return oom(b);
    b->anchors[b->n_anchors].name = copy;
    b->anchors[b->n_anchors].node = n;
    b->n_anchors++;
    return AMG_OK;
}

/* The latest definition wins, as YAML allows an anchor to be redefined. */
static const amg_ynode *anchor_find(const ybuild *b, const char *name)
{
    size_t i = b->n_anchors;

    while (i-- > 0)
        if (strcmp(b->anchors[i].name, name) == 0)
            return b->anchors[i].node;
    return NULL;
}

static int parse_node(ybuild *b, yaml_event_t *ev, int depth,
                      amg_ynode **out);

static int make_scalar(ybuild *b, yaml_event_t *ev, amg_ynode **out)
{
    size_t len = ev->data.scalar.length;
    amg_ynode *n;
    int rc;

    if (memchr(ev->data.scalar.value, '\0', len))
        return at_err(b, AMG_EFORMAT, (int)ev->start_mark.line + 1,
                      (int)ev->start_mark.column + 1,
                      "scalar contains a NUL character");
    n = node_new(AMG_Y_SCALAR, ev->start_mark);
    if (!n || !(n->str = malloc(len + 1))) {
        free(n);
        return oom(b);
    }
    memcpy(n->str, ev->data.scalar.value, len);
    n->str[len] = '\0';
    /* Block scalars (| and >) are text by construction, like quotes. */
    n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    rc = anchor_add(b, ev->data.scalar.anchor, n);
    if (rc != AMG_OK) {
        node_free(n);
        return rc;
    }
    *out = n;
    return AMG_OK;
}

static int make_alias(ybuild *b, yaml_event_t *ev, amg_ynode **out)
{
    const char *name = (const char *)ev->data.alias.anchor;
    int line = (int)ev->start_mark.line + 1;
    int col = (int)ev->start_mark.column + 1;
    const amg_ynode *target = anchor_find(b, name);
    amg_ynode *n;

    if (!target)
        return at_err(b, AMG_EFORMAT, line, col, "unknown alias '*%s'", name);
    if (target->kind != AMG_Y_SCALAR)
        return at_err(b, AMG_EUNSUPPORTED, line, col,
                      "alias '*%s' refers to %s; only aliases to scalars are "
                      "supported (repeat the block instead)",
                      name, amg_ynode_kind_name(target));
    b->alias_bytes += strlen(target->str) + 1;
    if (b->alias_bytes > YAML_MAX_ALIAS_BYTES)
        return at_err(b, AMG_ERANGE, line, col,
                      "aliases expand to more than %u bytes in all at "
                      "'*%s'; write the values out instead",
                      YAML_MAX_ALIAS_BYTES, name);
    n = node_new(AMG_Y_SCALAR, ev->start_mark);
    if (!n || !(n->str = amg_strdup(target->str))) {
        free(n);
        return oom(b);
    }
    n->quoted = target->quoted;
    *out = n;
    return AMG_OK;
}

static int check_duplicate(ybuild *b, const amg_ynode *map,
                           const amg_ynode *key)
{
    size_t i;

    for (i = 0; i < map->n_pairs; i++)
        if (strcmp(map->pairs[i].key->str, key->str) == 0)
            return at_err(b, AMG_EFORMAT, key->line, key->col,
                          "duplicate key '%s' (first at line %d)", key->str,
                          map->pairs[i].key->line);
    return AMG_OK;
}

static int map_append(ybuild *b, amg_ynode *map, amg_ynode *key,
                      amg_ynode *value)
{
    amg_ypair *grown = realloc(map->pairs,
                               (map->n_pairs + 1) * sizeof(*grown));

    if (!grown)
        return oom(b);
    map->pairs = grown;
    map->pairs[map->n_pairs].key = key;
    map->pairs[map->n_pairs].value = value;
    map->n_pairs++;
    return AMG_OK;
}

static int make_mapping(ybuild *b, yaml_event_t *ev, int depth,
                        amg_ynode **out)
{
    amg_ynode *map = node_new(AMG_Y_MAP, ev->start_mark);
    amg_ynode *key = NULL, *value = NULL;
    yaml_event_t e;
    int rc;

    if (!map)
        return oom(b);
    rc = anchor_add(b, ev->data.mapping_start.anchor, map);
    while (rc == AMG_OK) {
        rc = next_event(b, &e);
        if (rc != AMG_OK)
            break;
        if (e.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&e);
            break;
        }
        rc = parse_node(b, &e, depth + 1, &key);
        yaml_event_delete(&e);
        if (rc != AMG_OK)
            break;
        if (key->kind != AMG_Y_SCALAR) {
            rc = at_err(b, AMG_EFORMAT, key->line, key->col,
                        "mapping keys must be scalars; got %s",
                        amg_ynode_kind_name(key));
            break;
        }
        rc = check_duplicate(b, map, key);
        if (rc == AMG_OK)
            rc = next_event(b, &e);
        if (rc != AMG_OK)
            break;
        rc = parse_node(b, &e, depth + 1, &value);
        yaml_event_delete(&e);
        if (rc == AMG_OK)
            rc = map_append(b, map, key, value);
        if (rc == AMG_OK)
            key = value = NULL;
    }
    node_free(key);
    node_free(value);
    if (rc != AMG_OK)
        node_free(map);
    else
        *out = map;
    return rc;
}

static int make_sequence(ybuild *b, yaml_event_t *ev, int depth,
                         amg_ynode **out)
{
    amg_ynode *seq = node_new(AMG_Y_SEQ, ev->start_mark);
    amg_ynode *item = NULL;
    amg_ynode **grown;
    yaml_event_t e;
    int rc;

    if (!seq)
        return oom(b);
    rc = anchor_add(b, ev->data.sequence_start.anchor, seq);
    while (rc == AMG_OK) {
        rc = next_event(b, &e);
        if (rc != AMG_OK)
            break;
        if (e.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&e);
            break;
        }
        rc = parse_node(b, &e, depth + 1, &item);
        yaml_event_delete(&e);
        if (rc != AMG_OK)
            break;
        grown = realloc(seq->items, (seq->n_items + 1) * sizeof(*grown));
        if (!grown) {
            node_free(item);
            rc = oom(b);
            break;
        }
        seq->items = grown;
        seq->items[seq->n_items++] = item;
    }
    if (rc != AMG_OK)
        node_free(seq);
    else
        *out = seq;
    return rc;
}

/* Build the node that starts with ev (which the caller deletes). */
static int parse_node(ybuild *b, yaml_event_t *ev, int depth,
                      amg_ynode **out)
{
    *out = NULL;
    if (depth > YAML_MAX_DEPTH)
        return at_err(b, AMG_EFORMAT, (int)ev->start_mark.line + 1,
                      (int)ev->start_mark.column + 1,
                      "nesting deeper than %d levels", YAML_MAX_DEPTH);
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return make_scalar(b, ev, out);
    case YAML_ALIAS_EVENT:
        return make_alias(b, ev, out);
    case YAML_MAPPING_START_EVENT:
        return make_mapping(b, ev, depth, out);
    case YAML_SEQUENCE_START_EVENT:
        return make_sequence(b, ev, depth, out);
    default:
        return at_err(b, AMG_EFORMAT, (int)ev->start_mark.line + 1,
                      (int)ev->start_mark.column + 1,
                      "unexpected YAML event");
    }
}

/* Expect an event of the given type (stream/document framing). */
static int expect_event(ybuild *b, yaml_event_type_t type, yaml_event_t *ev)
{
    int rc = next_event(b, ev);

    if (rc == AMG_OK && ev->type != type) {
        rc = at_err(b, AMG_EFORMAT, (int)ev->start_mark.line + 1,
                    (int)ev->start_mark.column + 1, "unexpected YAML event");
        yaml_event_delete(ev);
    }
    return rc;
}

/* Stream: one document or none. */
static int parse_stream(ybuild *b, amg_ynode **root)
{
    yaml_event_t ev;
    int rc;

    rc = expect_event(b, YAML_STREAM_START_EVENT, &ev);
    if (rc != AMG_OK)
        return rc;
    yaml_event_delete(&ev);
    rc = next_event(b, &ev);
    if (rc != AMG_OK)
        return rc;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        return AMG_OK;
    }
    yaml_event_delete(&ev);            /* document start */
    rc = next_event(b, &ev);
    if (rc != AMG_OK)
        return rc;
    rc = parse_node(b, &ev, 0, root);
    yaml_event_delete(&ev);
    if (rc == AMG_OK)
        rc = expect_event(b, YAML_DOCUMENT_END_EVENT, &ev);
    if (rc != AMG_OK)
        return rc;
    yaml_event_delete(&ev);
    rc = next_event(b, &ev);
    if (rc != AMG_OK)
        return rc;
    if (ev.type != YAML_STREAM_END_EVENT)
        rc = at_err(b, AMG_EFORMAT, (int)ev.start_mark.line + 1,
                    (int)ev.start_mark.column + 1,
                    "a second YAML document; a pipeline is one document "
                    "(remove the '---' line)");
    yaml_event_delete(&ev);
    return rc;
}

int amg_ydoc_parse(amg_ydoc *d, const char *label, const char *text,
                   size_t len, amg_err *err)
{
    ybuild b;
    amg_ynode *root = NULL;
    size_t i;
    int rc;

    memset(d, 0, sizeof(*d));
    memset(&b, 0, sizeof(b));
    b.label = label;
    b.text = text;
    b.len = len;
    b.err = err;
    d->path = amg_strdup(label);
    if (!d->path)
        return oom(&b);
    if (!yaml_parser_initialize(&b.parser)) {
        rc = oom(&b);
        goto done;
    }
    yaml_parser_set_input_string(&b.parser, (const unsigned char *)text, len);
    rc = parse_stream(&b, &root);
    yaml_parser_delete(&b.parser);
done:
    for (i = 0; i < b.n_anchors; i++)
        free(b.anchors[i].name);
    free(b.anchors);
    if (rc != AMG_OK) {
        node_free(root);
        amg_ydoc_free(d);
        return rc;
    }
    d->root = root;
    return AMG_OK;
}

int amg_ydoc_load(amg_ydoc *d, const char *path, amg_err *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    memset(d, 0, sizeof(*d));
    rc = amg_read_file(path, YAML_MAX_BYTES, &text, &len, err);
    if (rc == AMG_OK)
        rc = amg_ydoc_parse(d, path, text, len, err);
    free(text);
    return rc;
}

void amg_ydoc_free(amg_ydoc *d)
{
    if (!d)
        return;
    free(d->path);
    node_free(d->root);
    d->path = NULL;
    d->root = NULL;
}

const amg_ynode *amg_ynode_get(const amg_ynode *map, const char *key)
{
    size_t i;

    if (!map || map->kind != AMG_Y_MAP)
        return NULL;
    for (i = 0; i < map->n_pairs; i++)
        if (strcmp(map->pairs[i].key->str, key) == 0)
            return map->pairs[i].value;
    return NULL;
}

/* --- YAML 1.2 core schema for plain scalars */

static int plain(const amg_ynode *n)
{
    return n && n->kind == AMG_Y_SCALAR && !n->quoted;
}

static int is_one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return 1;
    return 0;
}

int amg_ynode_is_null(const amg_ynode *n)
{
    static const char *const nulls[] = { "", "~", "null", "Null", "NULL",
                                         NULL };

    return plain(n) && is_one_of(n->str, nulls);
}

int amg_ynode_as_bool(const amg_ynode *n, int *out)
{
    static const char *const yes[] = { "true", "True", "TRUE", NULL };
    static const char *const no[] = { "false", "False", "FALSE", NULL };

    if (!plain(n))
        return -1;
    if (is_one_of(n->str, yes))
        *out = 1;
    else if (is_one_of(n->str, no))
        *out = 0;
    else
        return -1;
    return 0;
}

static size_t span(const char *s, const char *set)
{
    return strspn(s, set);
}

#define DIGITS "0123456789"

/* [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+ ; returns the base, 0 if none. */
static int int_base(const char *s, const char **digits)
{
    if (s[0] == '0' && s[1] == 'o' && s[2] && !s[2 + span(s + 2, "01234567")]) {
        *digits = s + 2;
        return 8;
    }
    if (s[0] == '0' && s[1] == 'x' && s[2] &&
        !s[2 + span(s + 2, DIGITS "abcdefABCDEF")]) {
        *digits = s + 2;
        return 16;
    }
    *digits = s;
    if (*s == '-' || *s == '+')
        s++;
    return *s && !s[span(s, DIGITS)] ? 10 : 0;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static int is_decimal_float(const char *s)
{
    size_t whole, frac = 0;

    if (*s == '-' || *s == '+')
        s++;
    whole = span(s, DIGITS);
    s += whole;
    if (*s == '.') {
        s++;
        frac = span(s, DIGITS);
        s += frac;
    }
    if (whole == 0 && frac == 0)
        return 0;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+')
            s++;
        if (!span(s, DIGITS))
            return 0;
        s += span(s, DIGITS);
    }
    return *s == '\0';
}

static int special_float(const char *s, double *out)
{
    static const char *const infs[] = { ".inf", ".Inf", ".INF", NULL };
    static const char *const nans[] = { ".nan", ".NaN", ".NAN", NULL };
    double sign = 1.0;

    if (is_one_of(s, nans)) {
        *out = strtod("nan", NULL);
        return 0;
    }
    if (*s == '-' || *s == '+') {
        sign = *s == '-' ? -1.0 : 1.0;
        s++;
    }
    if (is_one_of(s, infs)) {
        *out = sign * strtod("inf", NULL);
        return 0;
    }
    return -1;
}

int amg_ynode_as_int(const amg_ynode *n, long long *out)
{
    const char *digits;
    char *end;
    long long v;
    int base;

    if (!plain(n))
        return -1;
    base = int_base(n->str, &digits);
    if (!base)
        return -1;
    errno = 0;
    v = strtoll(digits, &end, base);
    if (errno == ERANGE || *end)
        return -1;
    *out = v;
    return 0;
}

int amg_ynode_as_double(const amg_ynode *n, double *out)
{
    long long i;
    char *end;
    double v;

    if (!plain(n))
        return -1;
    if (amg_ynode_as_int(n, &i) == 0) {
        *out = (double)i;
        return 0;
    }
    if (special_float(n->str, out) == 0)
        return 0;
    if (!is_decimal_float(n->str))
        return -1;
    errno = 0;
    v = strtod(n->str, &end);
    if (*end)
        return -1;
    /* Underflow to zero or a denormal is still the number written; only
     * overflow loses it. */
    if (errno == ERANGE && (v > 1.0 || v < -1.0))
        return -1;
    *out = v;
    return 0;
}

const char *amg_ynode_kind_name(const amg_ynode *n)
{
    double d;
    int b;

    if (!n)
        return "nothing";
    if (n->kind == AMG_Y_MAP)
        return "a mapping";
    if (n->kind == AMG_Y_SEQ)
        return "a sequence";
    if (amg_ynode_is_null(n))
        return "null";
    if (amg_ynode_as_bool(n, &b) == 0)
        return "true/false";
    if (amg_ynode_as_double(n, &d) == 0)
        return "a number";
    return "a string";
}
