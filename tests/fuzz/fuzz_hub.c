/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_hub.c - libFuzzer target for what a Hub server sends back: response
 * header lines, the revision and tree-listing JSON, and the names it puts
 * in a listing. No network: the parsers are called on the bytes directly.
 *
 * The first byte picks the parser (mod 4), the rest is the server's text:
 *   0  header lines, split after each '\n', folded into one response
 *   1  a tree listing page, parsed twice (pagination appends)
 *   2  a revision answer
 *   3  a file name: amg_hub_path_safe against an independent rule, and
 *      the snapshot symlink target of a safe name
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub_cache.h"
#include "hub_fetch.h"
#include "hub_http.h"
#include "model_ref.h"

#define REPO "fuzz/repo"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A field filled from a header must stay a string inside its array. */
static void check_field(const char *f, size_t cap)
{
    if (memchr(f, '\0', cap) == NULL)
        abort();
}

static void fuzz_headers(const uint8_t *data, size_t size)
{
    amg_hub_resp r;
    size_t start = 0, i;

    memset(&r, 0, sizeof(r));
    for (i = 0; i <= size; i++) {
        size_t n;
        char *line;

        if (i < size && data[i] != '\n')
            continue;
        n = i - start + (i < size);
        if (n) {
            /* exactly the line's bytes, no terminator: as libcurl hands it
             * over, so ASan sees any read past the end */
            if (!(line = malloc(n)))
                break;
            memcpy(line, data + start, n);
            amg__hub_parse_header(&r, line, n);
            free(line);
        }
        start = i + 1;
    }
    check_field(r.commit, sizeof(r.commit));
    check_field(r.etag, sizeof(r.etag));
    check_field(r.error_code, sizeof(r.error_code));
    check_field(r.error_msg, sizeof(r.error_msg));
    /* the next page's URL is what stood between '<' and the first '>' */
    if (r.next && strchr(r.next, '>'))
        abort();
    if (r.linked_size && !r.has_size)
        abort();
    amg_hub_resp_free(&r);
}

/* A failure must say so and name the repository. */
static void check_failure(int rc, const amg_err *err)
{
    if (rc == AMG_OK || err->status != rc || !strstr(err->msg, REPO))
        abort();
}

static void fuzz_tree(const char *text)
{
    amg_hub_listing l = { 0 };
    amg_err err;
    size_t i, first;
    int rc;

    amg_err_clear(&err);
    rc = amg__hub_parse_tree(&l, text, REPO, "http://hub", &err);
    if (rc != AMG_OK) {
        check_failure(rc, &err);
        amg__hub_listing_free(&l);
        return;
    }
    first = l.n;
    if (amg__hub_parse_tree(&l, text, REPO, "http://hub", &err) != AMG_OK ||
        l.n != 2 * first)
        abort();
    for (i = 0; i < l.n; i++) {
        if (!amg_hub_path_safe(l.e[i].path) ||
            !amg_hub_etag_valid(l.e[i].etag))
            abort();
        if (i >= first && (strcmp(l.e[i].path, l.e[i - first].path) ||
                           strcmp(l.e[i].etag, l.e[i - first].etag) ||
                           l.e[i].size != l.e[i - first].size))
            abort();
    }
    amg__hub_listing_free(&l);
}

static void fuzz_revision(const char *text)
{
    char commit[41];
    amg_err err;
    int rc;

    amg_err_clear(&err);
    memset(commit, 'x', sizeof(commit));
    rc = amg__hub_parse_revision(text, REPO, "main", "http://hub", commit,
                                 &err);
    if (rc != AMG_OK)
        check_failure(rc, &err);
    else if (commit[40] != '\0' || !amg_hub_is_commit(commit))
        abort();
}

static int ends_with(const char *s, size_t n, const char *tail)
{
    size_t k = strlen(tail);

    return n >= k && !memcmp(s + n - k, tail, k);
}

/* The rule from the other side: forbidden substrings rather than a walk
 * over the components. */
static int reference_safe(const char *s)
{
    size_t n = strlen(s), i;

    if (n == 0 || n >= 1024 || s[0] == '/' || s[n - 1] == '/')
        return 0;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '\\')
            return 0;
    if (strstr(s, "//") || strstr(s, "/./") || strstr(s, "/../"))
        return 0;
    if (!strcmp(s, ".") || !strcmp(s, "..") || !strncmp(s, "./", 2) ||
        !strncmp(s, "../", 3))
        return 0;
    return !ends_with(s, n, "/.") && !ends_with(s, n, "/..");
}

static void fuzz_name(const char *s)
{
    const char *q;
    char *t, *p;
    int safe = amg_hub_path_safe(s);
    size_t ups = 2;

    if (safe != reference_safe(s))
        abort();
    if (!safe)
        return;
    /* snapshots/<commit>/<path> climbs back out once per folder level */
    for (q = s; *q; q++)
        ups += *q == '/';
    if (!(t = amg_hub_link_target(s, "ab")))
        return;
    for (p = t; ups; ups--, p += 3)
        if (strncmp(p, "../", 3))
            abort();
    if (strcmp(p, "blobs/ab"))
        abort();
    free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text;

    if (size == 0)
        return 0;
    if (data[0] % 4 == 0) {
        fuzz_headers(data + 1, size - 1);
        return 0;
    }
    /* the JSON parsers and the name check take C strings */
    if (!(text = malloc(size)))
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    if (data[0] % 4 == 1)
        fuzz_tree(text);
    else if (data[0] % 4 == 2)
        fuzz_revision(text);
    else
        fuzz_name(text);
    free(text);
    return 0;
}
