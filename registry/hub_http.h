/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hub_http.h - the Hugging Face Hub's HTTP protocol over libcurl: the
 * endpoint and token from the environment, GET with redirects followed by
 * hand (the Authorization header only ever goes to the host it was meant
 * for), retries, resumed downloads with Range, and errors classified by
 * X-Error-Code into messages that say what to do.
 *
 * The token is sent in one header and nowhere else: it is never printed,
 * not in verbose output and not in error messages.
 */
#ifndef AMG_HUB_HTTP_H
#define AMG_HUB_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct amg_hub_http {
    char *endpoint;                    /* HF_ENDPOINT, no trailing '/' */
    char *token;                       /* or NULL; never printed */
    char *ca_bundle;                   /* --ca-bundle / AMALGAM_CA_BUNDLE */
    int verbose;                       /* one line per request on stderr */
    long timeout_s;                    /* HF_HUB_DOWNLOAD_TIMEOUT: stall */
    unsigned retry_ms;                 /* first retry delay, then doubled */
} amg_hub_http;

/* What a response said, from its headers. */
typedef struct amg_hub_resp {
    long status;                       /* 0 when no response came */
    char commit[48];                   /* X-Repo-Commit */
    char etag[80];                     /* X-Linked-Etag, else ETag, bare */
    uint64_t size;                     /* X-Linked-Size, else Content-Length */
    int has_size;
    int linked_etag, linked_size;      /* the X-Linked-* headers came */
    char error_code[64];               /* X-Error-Code */
    char error_msg[256];               /* X-Error-Message */
    char *next;                        /* Link rel="next" (malloc'd) */
    int net_error;                     /* a transfer failure (no status) */
    char net_msg[256];                 /* curl's reason for it */
} amg_hub_resp;

/* Read the environment (HF_ENDPOINT, HF_TOKEN, HUGGING_FACE_HUB_TOKEN,
 * HF_TOKEN_PATH or $HF_HOME/token, AMALGAM_CA_BUNDLE unless ca_bundle is
 * given, HF_HUB_DOWNLOAD_TIMEOUT). */
int amg_hub_http_init(amg_hub_http *h, const char *ca_bundle, int verbose,
                      amg_err *err);
void amg_hub_http_free(amg_hub_http *h);

void amg_hub_resp_free(amg_hub_resp *r);

/* Fold one response header line, as libcurl hands it over (not
 * NUL-terminated, CRLF included), into *r. A status line starts a new
 * response. Pure, so that tests and fuzz targets reach it directly. */
void amg__hub_parse_header(amg_hub_resp *r, const char *line, size_t n);

/* GET url into a malloc'd NUL-terminated body of at most max bytes.
 * Retries 408/429/5xx and network failures. AMG_OK only for a 2xx; on an
 * HTTP error *r holds the response for amg_hub_http_fail. */
int amg_hub_get(const amg_hub_http *h, const char *url, size_t max,
                char **body, size_t *len, amg_hub_resp *r, amg_err *err);

/* Where downloaded bytes go. restart is called when a server answers a
 * Range request with the whole file: the sink must start over. */
typedef struct amg_hub_sink {
    int (*write)(void *ud, const void *buf, size_t n);
    int (*restart)(void *ud);
    void *ud;
} amg_hub_sink;

/* GET url into sink, expecting size bytes; a dropped connection resumes
 * with Range from what arrived (up to 5 times). */
int amg_hub_download(const amg_hub_http *h, const char *url, uint64_t size,
                     const amg_hub_sink *sink, amg_hub_resp *r,
                     amg_err *err);

/* Turn a failed response into a message that names repo (and revision
 * and file when given) and says what to do. Returns the status. */
int amg_hub_http_fail(const amg_hub_http *h, const amg_hub_resp *r,
                      const char *repo, const char *revision,
                      const char *file, amg_err *err);

/* Percent-encode s for a URL: keep_slash keeps '/' (file paths), else it
 * is encoded too (revisions such as refs/pr/1). malloc'd. */
char *amg_hub_quote(const char *s, int keep_slash);

#endif
