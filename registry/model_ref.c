/* SPDX-License-Identifier: Apache-2.0 */
/*
 * model_ref.c - model references and server-name checks.
 */
#include "config.h"
#include "model_ref.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

#define HUB_PART_MAX 96
#define HUB_PATH_MAX 1024

static int id_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.';
}

static int part_valid(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || n > HUB_PART_MAX)
        return 0;
    if (s[0] == '-' || s[0] == '.' || s[n - 1] == '-' || s[n - 1] == '.')
        return 0;
    for (i = 0; i < n; i++) {
        if (!id_char(s[i]))
            return 0;
        if (i && (s[i] == '-' || s[i] == '.') && s[i - 1] == s[i])
            return 0;
    }
    return 1;
}

int amg_hub_repo_id_valid(const char *s)
{
    const char *slash = strchr(s, '/');

    return slash && !strchr(slash + 1, '/') &&
           part_valid(s, (size_t)(slash - s)) &&
           part_valid(slash + 1, strlen(slash + 1));
}

int amg_hub_revision_valid(const char *s)
{
    size_t i, n = strlen(s);

    if (n == 0 || n > 255 || s[0] == '/' || s[n - 1] == '/' ||
        strstr(s, "..") || strstr(s, "//"))
        return 0;
    for (i = 0; i < n; i++)
        if (!id_char(s[i]) && s[i] != '/')
            return 0;
    return 1;
}

static int all_hex(const char *s, size_t n)
{
    size_t i;

    if (strlen(s) != n)
        return 0;
    for (i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int amg_hub_is_commit(const char *s)
{
    return all_hex(s, 40);
}

int amg_hub_etag_valid(const char *s)
{
    return all_hex(s, 40) || all_hex(s, 64);
}

int amg_hub_path_safe(const char *s)
{
    const char *part = s, *p;
    size_t n = strlen(s);

    if (n == 0 || n >= HUB_PATH_MAX || s[0] == '/')
        return 0;
    for (p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\')
            return 0;
    for (;;) {
        size_t len;

        p = strchr(part, '/');
        len = p ? (size_t)(p - part) : strlen(part);
        if (len == 0 || (len == 1 && part[0] == '.') ||
            (len == 2 && part[0] == '.' && part[1] == '.'))
            return 0;
        if (!p)
            return 1;
        part = p + 1;
    }
}

void amg_model_ref_free(amg_model_ref *r)
{
    free(r->path);
    free(r->repo_id);
    free(r->revision);
    memset(r, 0, sizeof(*r));
}

/* Split "org/name[@rev]"; 0 when it is not of that form. */
static int split_hub(const char *text, amg_model_ref *out)
{
    const char *at = strchr(text, '@');
    size_t n = at ? (size_t)(at - text) : strlen(text);

    out->repo_id = malloc(n + 1);
    if (!out->repo_id)
        return -1;
    memcpy(out->repo_id, text, n);
    out->repo_id[n] = '\0';
    out->revision = amg_strdup(at ? at + 1 : "main");
    if (!out->revision)
        return -1;
    if (!amg_hub_repo_id_valid(out->repo_id) ||
        !amg_hub_revision_valid(out->revision)) {
        free(out->repo_id);
        free(out->revision);
        out->repo_id = out->revision = NULL;
        return 0;
    }
    out->kind = AMG_MREF_HUB;
    return 1;
}

static int looks_local(const char *t)
{
    struct stat st;

    return t[0] == '/' || t[0] == '~' || !strncmp(t, "./", 2) ||
           !strncmp(t, "../", 3) || !strcmp(t, ".") || !strcmp(t, "..") ||
           stat(t, &st) == 0;
}

int amg_model_ref_parse(const char *text, amg_model_ref *out, amg_err *err)
{
    int r;

    memset(out, 0, sizeof(*out));
    if (!text[0])
        return amg_err_set(err, AMG_EUSAGE, "empty model reference");
    if (!strncmp(text, "hf://", 5)) {
        r = split_hub(text + 5, out);
        if (r < 0)
            goto oom;
        if (r == 0)
            return amg_err_set(err, AMG_EUSAGE, "'%s' is not a Hub model id "
                               "(expected hf://org/name or "
                               "hf://org/name@revision)", text);
        return AMG_OK;
    }
    if (!looks_local(text)) {
        r = split_hub(text, out);
        if (r < 0)
            goto oom;
        if (r == 1)
            return AMG_OK;
    }
    out->kind = AMG_MREF_PATH;
    if (!(out->path = amg_strdup(text)))
        goto oom;
    return AMG_OK;
oom:
    amg_model_ref_free(out);
    return amg_err_set(err, AMG_ENOMEM, "out of memory parsing '%s'", text);
}
