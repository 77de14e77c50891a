/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hub_http.c - HTTP to the Hub with libcurl (protocol facts in
 * research/formats.md §2.2-§2.4, from huggingface_hub's file_download.py
 * and utils/_http.py).
 */
#include "config.h"
#include "hub_http.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include <amalgam/version.h>

#include "hub_cache.h"
#include "util.h"

#define DEFAULT_ENDPOINT "https://huggingface.co"
#define MAX_REDIRECTS 10
#define MAX_ATTEMPTS 5
#define ERR_BODY_MAX 4096

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* The token cleaned as huggingface_hub cleans it: CR/LF dropped, blanks
 * stripped, empty means none. */
static char *clean_token(const char *raw)
{
    size_t n = strlen(raw), i, o = 0;
    char *t = malloc(n + 1);

    if (!t)
        return NULL;
    for (i = 0; i < n; i++)
        if (raw[i] != '\r' && raw[i] != '\n')
            t[o++] = raw[i];
    while (o && isspace((unsigned char)t[o - 1]))
        o--;
    t[o] = '\0';
    for (i = 0; isspace((unsigned char)t[i]); i++)
        ;
    memmove(t, t + i, o - i + 1);
    if (!t[0]) {
        free(t);
        return NULL;
    }
    return t;
}

static char *token_from_env(void)
{
    const char *v = getenv("HF_TOKEN"), *path = getenv("HF_TOKEN_PATH");
    char *home, *file = NULL, *data = NULL, *t = NULL;

    if (!v)
        v = getenv("HUGGING_FACE_HUB_TOKEN");
    if (v)
        return clean_token(v);
    if (path && path[0]) {
        file = amg_strdup(path);
    } else if ((home = amg_hub_home())) {
        file = amg_path_join(home, "token");
        free(home);
    }
    if (file && amg_read_file(file, 65536, &data, NULL, NULL) == AMG_OK)
        t = clean_token(data);
    free(data);
    free(file);
    return t;
}

int amg_hub_http_init(amg_hub_http *h, const char *ca_bundle, int verbose,
                      amg_err *err)
{
    const char *ep = getenv("HF_ENDPOINT"), *to;
    size_t n;

    memset(h, 0, sizeof(*h));
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return amg_err_set(err, AMG_EIO, "cannot initialize libcurl: %s",
                           curl_easy_strerror(curl_init_rc));
    if (!ep || !ep[0])
        ep = DEFAULT_ENDPOINT;
    if (strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8))
        return amg_err_set(err, AMG_EUSAGE, "HF_ENDPOINT '%s' is not an "
                           "http:// or https:// address", ep);
    if (!ca_bundle || !ca_bundle[0])
        ca_bundle = getenv("AMALGAM_CA_BUNDLE");
    h->endpoint = amg_strdup(ep);
    h->ca_bundle = ca_bundle && ca_bundle[0] ? amg_strdup(ca_bundle) : NULL;
    if (!h->endpoint || (ca_bundle && ca_bundle[0] && !h->ca_bundle)) {
        amg_hub_http_free(h);
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    }
    n = strlen(h->endpoint);
    while (n && h->endpoint[n - 1] == '/')
        h->endpoint[--n] = '\0';
    if (h->ca_bundle && !amg_is_file(h->ca_bundle)) {
        amg_err_set(err, AMG_ENOTFOUND, "CA bundle '%s' is not a readable "
                    "file", h->ca_bundle);
        amg_hub_http_free(h);
        return AMG_ENOTFOUND;
    }
    h->token = token_from_env();
    h->verbose = verbose;
    h->timeout_s = 10;
    to = getenv("HF_HUB_DOWNLOAD_TIMEOUT");
    if (to && to[0]) {
        char *end;
        long v = strtol(to, &end, 10);

        if (*end || v <= 0) {
            amg_hub_http_free(h);
            return amg_err_set(err, AMG_EUSAGE, "HF_HUB_DOWNLOAD_TIMEOUT "
                               "'%s' is not a positive number of seconds", to);
        }
        h->timeout_s = v;
    }
    h->retry_ms = 250;
    return AMG_OK;
}

void amg_hub_http_free(amg_hub_http *h)
{
    free(h->endpoint);
    if (h->token) {
        /* do not leave the secret lying in freed memory */
        volatile char *p = h->token;
        while (*p)
            *p++ = 0;
        free(h->token);
    }
    free(h->ca_bundle);
    memset(h, 0, sizeof(*h));
}

void amg_hub_resp_free(amg_hub_resp *r)
{
    free(r->next);
    memset(r, 0, sizeof(*r));
}

char *amg_hub_quote(const char *s, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s), i, o = 0;
    char *r = malloc(n * 3 + 1);

    if (!r)
        return NULL;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (isalnum(ch) || strchr("-_.~", ch) || (keep_slash && ch == '/')) {
            r[o++] = (char)ch;
        } else {
            r[o++] = '%';
            r[o++] = hex[ch >> 4];
            r[o++] = hex[ch & 15];
        }
    }
    r[o] = '\0';
    return r;
}

/* ---- one request */

typedef struct xfer {
    amg_hub_resp *r;
    const amg_hub_sink *sink;          /* 2xx bodies go here */
    int ranged;                        /* a Range was asked for */
    int restarted;                     /* sink restarted for this response */
    int sink_failed;
} xfer;

static void copy_value(char *dst, size_t cap, const char *v, size_t n)
{
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
        n--;
    while (n && *v == ' ') {
        v++;
        n--;
    }
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

/* ETag "W/\"abc\"" -> "abc", as huggingface_hub normalizes it. */
static void bare_etag(char *e)
{
    size_t n;

    if (!strncmp(e, "W/", 2))
        memmove(e, e + 2, strlen(e + 2) + 1);
    n = strlen(e);
    if (n >= 2 && e[0] == '"' && e[n - 1] == '"') {
        memmove(e, e + 1, n - 2);
        e[n - 2] = '\0';
    }
}

/* Link: <url>; rel="next" */
static void parse_link(amg_hub_resp *r, const char *v, size_t n)
{
    char buf[2048], *p, *lt, *gt;

    copy_value(buf, sizeof(buf), v, n);
    for (p = buf; (lt = strchr(p, '<')) && (gt = strchr(lt, '>')); p = gt) {
        const char *rel = strstr(gt, "rel=");
        const char *comma = strchr(gt, ',');

        if (rel && (!comma || rel < comma) &&
            !strncmp(rel + 4 + (rel[4] == '"'), "next", 4)) {
            free(r->next);
            *gt = '\0';
            r->next = amg_strdup(lt + 1);
            return;
        }
        if (!comma)
            return;
        gt = (char *)comma;
    }
}

static int header_is(const char *line, size_t n, const char *name,
                     const char **val, size_t *vlen)
{
    size_t k = strlen(name);

    if (n <= k || line[k] != ':' || strncasecmp(line, name, k))
        return 0;
    *val = line + k + 1;
    *vlen = n - k - 1;
    return 1;
}

/* A size header: decimal digits only (strtoull would take "-1" as the
 * largest value and "+5" as 5). Returns 1 and sets *out when valid. */
static int parse_size_value(const char *num, uint64_t *out)
{
    char *end;
    const char *p;

    if (!num[0])
        return 0;
    for (p = num; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    errno = 0;
    *out = strtoull(num, &end, 10);
    return errno == 0 && !*end;
}

void amg__hub_parse_header(amg_hub_resp *r, const char *line, size_t n)
{
    size_t vlen;
    const char *v;
    char num[32], *end;

    if (n > 5 && !strncmp(line, "HTTP/", 5)) {
        /* a new response (after a 100 Continue, say): forget the last */
        free(r->next);
        memset(r, 0, sizeof(*r));
        copy_value(num, sizeof(num), line, n);
        end = strchr(num, ' ');
        r->status = end ? strtol(end + 1, NULL, 10) : 0;
        return;
    }
    if (header_is(line, n, "X-Repo-Commit", &v, &vlen)) {
        copy_value(r->commit, sizeof(r->commit), v, vlen);
    } else if (header_is(line, n, "X-Linked-Etag", &v, &vlen)) {
        copy_value(r->etag, sizeof(r->etag), v, vlen);
        bare_etag(r->etag);
        r->linked_etag = 1;
    } else if (header_is(line, n, "ETag", &v, &vlen)) {
        if (!r->linked_etag) {
            copy_value(r->etag, sizeof(r->etag), v, vlen);
            bare_etag(r->etag);
        }
    } else if (header_is(line, n, "X-Linked-Size", &v, &vlen)) {
        copy_value(num, sizeof(num), v, vlen);
        r->has_size = parse_size_value(num, &r->size);
        r->linked_size = r->has_size;
    } else if (header_is(line, n, "Content-Length", &v, &vlen)) {
        if (!r->linked_size) {
            copy_value(num, sizeof(num), v, vlen);
            r->has_size = parse_size_value(num, &r->size);
        }
    } else if (header_is(line, n, "X-Error-Code", &v, &vlen)) {
        copy_value(r->error_code, sizeof(r->error_code), v, vlen);
    } else if (header_is(line, n, "X-Error-Message", &v, &vlen)) {
        copy_value(r->error_msg, sizeof(r->error_msg), v, vlen);
    } else if (header_is(line, n, "Link", &v, &vlen)) {
        parse_link(r, v, vlen);
    }
}

static size_t on_header(char *line, size_t sz, size_t nitems, void *ud)
{
    xfer *x = ud;

    amg__hub_parse_header(x->r, line, sz * nitems);
    return sz * nitems;
}

static size_t on_body(char *buf, size_t sz, size_t nitems, void *ud)
{
    xfer *x = ud;
    size_t n = sz * nitems;

    if (x->r->status < 200 || x->r->status >= 300 || !x->sink)
        return n;                      /* an error page: not the file */
    if (x->ranged && x->r->status == 200 && !x->restarted) {
        /* the server ignored Range and sends the whole file again */
        x->restarted = 1;
        if (x->sink->restart(x->sink->ud) != 0) {
            x->sink_failed = 1;
            return 0;
        }
    }
    if (x->sink->write(x->sink->ud, buf, n) != 0) {
        x->sink_failed = 1;
        return 0;
    }
    return n;
}

/* 1 when a and b share scheme, host and port. */
static int same_origin(const char *a, const char *b)
{
    CURLU *ua = curl_url(), *ub = curl_url();
    char *pa[3] = { 0 }, *pb[3] = { 0 };
    static const CURLUPart parts[3] = { CURLUPART_SCHEME, CURLUPART_HOST,
                                        CURLUPART_PORT };
    int same = ua && ub && !curl_url_set(ua, CURLUPART_URL, a, 0) &&
               !curl_url_set(ub, CURLUPART_URL, b, 0);
    int i;

    for (i = 0; i < 3 && same; i++) {
        curl_url_get(ua, parts[i], &pa[i], CURLU_DEFAULT_PORT);
        curl_url_get(ub, parts[i], &pb[i], CURLU_DEFAULT_PORT);
        same = pa[i] && pb[i] && !strcasecmp(pa[i], pb[i]);
    }
    for (i = 0; i < 3; i++) {
        curl_free(pa[i]);
        curl_free(pb[i]);
    }
    curl_url_cleanup(ua);
    curl_url_cleanup(ub);
    return same;
}

/* Verbose output: the method, the URL without its query (a CDN's signed
 * parameters) and the status. Never a header. */
static void trace(const amg_hub_http *h, const char *url, const amg_hub_resp *r)
{
    const char *q = strchr(url, '?');
    int n = q ? (int)(q - url) : (int)strlen(url);

    if (!h->verbose)
        return;
    if (r->status)
        fprintf(stderr, "amalgam: GET %.*s -> %ld\n", n, url, r->status);
    else
        fprintf(stderr, "amalgam: GET %.*s -> %s\n", n, url, r->net_msg);
}

static int setup(const amg_hub_http *h, CURL *c, struct curl_slist **hdrs,
                 int with_auth)
{
    char ua[64], *auth = NULL;
    size_t n;
    int ok = 1;

    snprintf(ua, sizeof(ua), "User-Agent: amalgam/%s", AMG_VERSION_STRING);
    *hdrs = curl_slist_append(NULL, ua);
    /* the real size in Content-Length: no compression */
    ok = *hdrs && curl_slist_append(*hdrs, "Accept-Encoding: identity");
    if (ok && with_auth && h->token) {
        n = strlen(h->token) + 32;
        ok = (auth = malloc(n)) != NULL;
        if (ok) {
            snprintf(auth, n, "Authorization: Bearer %s", h->token);
            ok = curl_slist_append(*hdrs, auth) != NULL;
            memset(auth, 0, n);
            free(auth);
        }
    }
    if (!ok)
        return -1;
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, h->timeout_s);
    /* a stalled transfer fails (and is retried) instead of hanging */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, h->timeout_s);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    if (h->ca_bundle)
        curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_bundle);
    return 0;
}

/* One GET of url and its redirects. Authorization goes along while the
 * origin stays the endpoint's: a CDN on another host never sees it. */
static int get_once(const amg_hub_http *h, const char *url, const char *range,
                    const amg_hub_sink *sink, amg_hub_resp *r, amg_err *err)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    char *cur = amg_strdup(url), *loc;
    int hops, rc = AMG_OK, auth;
    CURLcode cc;
    xfer x;

    if (!c || !cur) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
        goto out;
    }
    auth = same_origin(url, h->endpoint);
    for (hops = 0; ; hops++) {
        curl_easy_reset(c);
        curl_slist_free_all(hdrs);
        hdrs = NULL;
        if (setup(h, c, &hdrs, auth) != 0) {
            rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
            goto out;
        }
        memset(&x, 0, sizeof(x));
        x.r = r;
        x.sink = sink;
        x.ranged = range != NULL;
        amg_hub_resp_free(r);
        curl_easy_setopt(c, CURLOPT_URL, cur);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
        if (range)
            curl_easy_setopt(c, CURLOPT_RANGE, range);
        cc = curl_easy_perform(c);
        if (x.sink_failed) {
            rc = amg_err_set(err, AMG_EIO, "cannot store what was downloaded "
                             "from %s", h->endpoint);
            goto out;
        }
        if (cc != CURLE_OK) {
            r->net_error = 1;
            snprintf(r->net_msg, sizeof(r->net_msg), "%s",
                     curl_easy_strerror(cc));
            r->status = 0;
            trace(h, cur, r);
            rc = AMG_EIO;
            goto out;
        }
        trace(h, cur, r);
        if (r->status < 300 || r->status >= 400)
            break;
        loc = NULL;
        curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &loc);
        if (!loc)
            break;
        if (hops == MAX_REDIRECTS) {
            rc = amg_err_set(err, AMG_EIO, "too many redirects from %s",
                             h->endpoint);
            goto out;
        }
        auth = auth && same_origin(cur, loc);
        free(cur);
        if (!(cur = amg_strdup(loc))) {
            rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
            goto out;
        }
    }
    if (r->status < 200 || r->status >= 300)
        rc = AMG_EIO;
out:
    curl_slist_free_all(hdrs);
    if (c)
        curl_easy_cleanup(c);
    free(cur);
    return rc;
}

static int retryable(const amg_hub_resp *r)
{
    return r->net_error || r->status == 408 || r->status == 429 ||
           r->status == 500 || r->status == 502 || r->status == 503 ||
           r->status == 504;
}

static void pause_ms(unsigned ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---- memory bodies */

typedef struct membuf {
    char *data;
    size_t len, max;
} membuf;

static int mem_write(void *ud, const void *buf, size_t n)
{
    membuf *m = ud;
    char *grown;

    if (n > m->max - m->len)
        return -1;
    if (!(grown = realloc(m->data, m->len + n + 1)))
        return -1;
    m->data = grown;
    memcpy(m->data + m->len, buf, n);
    m->len += n;
    m->data[m->len] = '\0';
    return 0;
}

static int mem_restart(void *ud)
{
    ((membuf *)ud)->len = 0;
    return 0;
}

int amg_hub_get(const amg_hub_http *h, const char *url, size_t max,
                char **body, size_t *len, amg_hub_resp *r, amg_err *err)
{
    membuf m = { NULL, 0, max };
    amg_hub_sink sink = { mem_write, mem_restart, &m };
    unsigned delay = h->retry_ms;
    int attempt, rc = AMG_EIO;

    *body = NULL;
    for (attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        m.len = 0;
        amg_err_clear(err);
        rc = get_once(h, url, NULL, &sink, r, err);
        if (rc == AMG_OK || err->status || !retryable(r) ||
            attempt == MAX_ATTEMPTS)
            break;
        pause_ms(delay);
        delay *= 2;
    }
    if (rc == AMG_OK && !m.data && !(m.data = calloc(1, 1)))
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
    if (rc != AMG_OK) {
        free(m.data);
        return rc;
    }
    *body = m.data;
    if (len)
        *len = m.len;
    return AMG_OK;
}

/* ---- files */

typedef struct counted {
    const amg_hub_sink *inner;
    uint64_t have;
} counted;

static int counted_write(void *ud, const void *buf, size_t n)
{
    counted *c = ud;

    c->have += n;
    return c->inner->write(c->inner->ud, buf, n);
}

static int counted_restart(void *ud)
{
    counted *c = ud;

    c->have = 0;
    return c->inner->restart(c->inner->ud);
}

int amg_hub_download(const amg_hub_http *h, const char *url, uint64_t size,
                     const amg_hub_sink *sink, amg_hub_resp *r, amg_err *err)
{
    counted cnt = { sink, 0 };
    amg_hub_sink outer = { counted_write, counted_restart, &cnt };
    unsigned delay = h->retry_ms;
    char range[48];
    int attempt, rc = AMG_EIO;

    for (attempt = 1; attempt <= MAX_ATTEMPTS + 1; attempt++) {
        amg_err_clear(err);
        if (cnt.have)
            snprintf(range, sizeof(range), "%" PRIu64 "-", cnt.have);
        rc = get_once(h, url, cnt.have ? range : NULL, &outer, r, err);
        if (rc == AMG_OK && cnt.have == size)
            return AMG_OK;
        if (rc == AMG_OK) {
            /* a clean end with bytes missing: the server closed early */
            r->net_error = 1;
            snprintf(r->net_msg, sizeof(r->net_msg), "connection closed "
                     "after %" PRIu64 " of %" PRIu64 " bytes", cnt.have, size);
            rc = AMG_EIO;
        }
        if (cnt.have > size)
            return amg_err_set(err, AMG_EFORMAT, "the server sent more than "
                               "the %" PRIu64 " bytes announced", size);
        if (err->status || !retryable(r) || attempt > MAX_ATTEMPTS)
            break;
        if (h->verbose && r->net_error)
            fprintf(stderr, "amalgam: transfer interrupted (%s); resuming "
                    "at byte %" PRIu64 "\n", r->net_msg, cnt.have);
        if (!r->net_error) {
            pause_ms(delay);
            delay *= 2;
        }
    }
    return rc;
}

/* ---- errors */

int amg_hub_http_fail(const amg_hub_http *h, const amg_hub_resp *r,
                      const char *repo, const char *revision,
                      const char *file, amg_err *err)
{
    const char *code = r->error_code;
    const char *tok = h->token ? "the token in use may lack access to it"
                               : "set HF_TOKEN to a token that can read it";

    if (err->status && !r->status && !r->net_error)
        return err->status;            /* a local failure, already said */
    if (r->net_error)
        return amg_err_set(err, AMG_EIO, "cannot reach %s for '%s': %s "
                           "(set HF_HUB_OFFLINE=1 to use only the local "
                           "cache)", h->endpoint, repo, r->net_msg);
    if (!strcmp(code, "GatedRepo"))
        return amg_err_set(err, AMG_EUNSUPPORTED, "'%s' is a gated "
                           "repository: accept its license at %s/%s while "
                           "logged in, then %s", repo, h->endpoint, repo,
                           h->token ? "check that HF_TOKEN belongs to that "
                           "account" : "set HF_TOKEN to a token of that "
                           "account");
    if (!strcmp(code, "RevisionNotFound"))
        return amg_err_set(err, AMG_ENOTFOUND, "revision '%s' was not found "
                           "in '%s': check the branch, tag or commit", revision,
                           repo);
    if (!strcmp(code, "EntryNotFound"))
        return amg_err_set(err, AMG_ENOTFOUND, "'%s' was not found in '%s' at "
                           "revision '%s'", file ? file : "(file)", repo,
                           revision);
    if (!strcmp(r->error_msg, "Access to this resource is disabled."))
        return amg_err_set(err, AMG_ENOTFOUND, "repository '%s' is disabled "
                           "on %s", repo, h->endpoint);
    if (!strcmp(code, "RepoNotFound") || r->status == 401 ||
        (r->status == 404 && !file))
        return amg_err_set(err, AMG_ENOTFOUND, "repository '%s' was not found "
                           "on %s: check its name; if it is private, %s",
                           repo, h->endpoint, tok);
    if (r->status == 403)
        return amg_err_set(err, AMG_EUNSUPPORTED, "access to '%s' was refused "
                           "(HTTP 403): make sure the token has the right "
                           "permissions", repo);
    if (r->status == 429)
        return amg_err_set(err, AMG_EIO, "%s is rate limiting requests for "
                           "'%s' (HTTP 429): wait and try again", h->endpoint,
                           repo);
    if (r->status == 404)
        return amg_err_set(err, AMG_ENOTFOUND, "'%s' was not found in '%s' at "
                           "revision '%s'", file, repo, revision);
    return amg_err_set(err, AMG_EIO, "%s answered HTTP %ld for '%s'%s%s%s",
                       h->endpoint, r->status, repo, file ? " (" : "",
                       file ? file : "", file ? ")" : "");
}
