/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

char *amg_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);

    if (p)
        memcpy(p, s, n);
    return p;
}

char *amg_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *p = malloc(a + slash + b + 1);

    if (!p)
        return NULL;
    memcpy(p, dir, a);
    if (slash)
        p[a] = '/';
    memcpy(p + a + slash, name, b + 1);
    return p;
}

int amg_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int amg_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int amg_pread_all(int fd, void *buf, size_t len, uint64_t off,
                  const char *path, amg_err *err)
{
    char *p = buf;

    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return amg_err_errno(err, AMG_EIO, errno, "cannot read '%s'", path);
        }
        if (n == 0)
            return amg_err_set(err, AMG_EIO,
                               "cannot read '%s': file is truncated", path);
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return AMG_OK;
}

int amg_pwrite_all(int fd, const void *buf, size_t len, uint64_t off,
                   const char *path, amg_err *err)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return amg_err_errno(err, AMG_EIO, errno, "cannot write '%s'",
                                 path);
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return AMG_OK;
}

int amg_open_file(const char *path, int *fd, uint64_t *size, amg_err *err)
{
    struct stat st;
    int rc;

    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return amg_err_errno(err, errno == ENOENT ? AMG_ENOTFOUND : AMG_EIO,
                             errno, "cannot open '%s'", path);
    if (fstat(*fd, &st) < 0)
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot stat '%s'", path);
    else if (!S_ISREG(st.st_mode))
        rc = amg_err_set(err, AMG_EINVAL, "'%s' is not a regular file", path);
    else
        rc = AMG_OK;
    if (rc) {
        close(*fd);
        *fd = -1;
        return rc;
    }
    *size = (uint64_t)st.st_size;
    return AMG_OK;
}

int amg_read_file(const char *path, size_t max_len, char **data, size_t *len,
                  amg_err *err)
{
    uint64_t size;
    char *buf = NULL;
    int fd, rc;

    *data = NULL;
    if ((rc = amg_open_file(path, &fd, &size, err)))
        return rc;
    if (size > max_len) {
        rc = amg_err_set(err, AMG_EFORMAT,
                         "'%s' is too large (%lld bytes, limit %zu)", path,
                         (long long)size, max_len);
        goto out;
    }
    buf = malloc((size_t)size + 1);
    if (!buf) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory reading '%s'", path);
        goto out;
    }
    rc = amg_pread_all(fd, buf, (size_t)size, 0, path, err);
    if (rc)
        goto out;
    buf[size] = '\0';
    *data = buf;
    buf = NULL;
    if (len)
        *len = (size_t)size;
out:
    free(buf);
    close(fd);
    return rc;
}

int amg_write_file_atomic(const char *path, const void *data, size_t len,
                          amg_err *err)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    int fd, rc;

    if (!tmp)
        return amg_err_set(err, AMG_ENOMEM, "out of memory writing '%s'",
                           path);
    snprintf(tmp, n, "%s.tmp-%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot create '%s'", tmp);
        free(tmp);
        return rc;
    }
    rc = amg_pwrite_all(fd, data, len, 0, tmp, err);
    if (!rc && fsync(fd) < 0)
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot sync '%s'", tmp);
    if (close(fd) < 0 && !rc)
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot close '%s'", tmp);
    if (!rc && rename(tmp, path) < 0)
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot rename '%s' to '%s'",
                           tmp, path);
    if (rc)
        unlink(tmp);
    free(tmp);
    return rc;
}

int amg_parse_size(const char *s, uint64_t *out, amg_err *err)
{
    static const struct { const char *suffix; double mult; } units[] = {
        { "",    1.0 },  { "b",   1.0 },
        { "kb",  1e3 },  { "mb",  1e6 },  { "gb",  1e9 },  { "tb",  1e12 },
        { "k",   1e3 },  { "m",   1e6 },  { "g",   1e9 },  { "t",   1e12 },
        { "kib", 1024.0 }, { "mib", 1048576.0 }, { "gib", 1073741824.0 },
        { "tib", 1099511627776.0 },
    };
    char *end;
    double v;
    size_t i;

    errno = 0;
    v = strtod(s, &end);
    if (end == s || errno || !(v >= 0) || !isfinite(v))
        goto bad;
    while (*end == ' ')
        end++;
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].suffix) == 0) {
            double bytes = v * units[i].mult;
            if (bytes >= 18446744073709551616.0)
                goto bad;
            *out = (uint64_t)bytes;
            return AMG_OK;
        }
    }
bad:
    return amg_err_set(err, AMG_EINVAL,
                       "invalid size '%s' (expected e.g. 5GB, 500MB, 2GiB)", s);
}

void amg_format_bytes(uint64_t n, char *buf, size_t cap)
{
    static const char *units[] = { "B", "kB", "MB", "GB", "TB", "PB" };
    double v = (double)n;
    int u = 0;

    if (n < 1000) {
        snprintf(buf, cap, "%llu B", (unsigned long long)n);
        return;
    }
    while (v >= 1000.0 && u < 5) {
        v /= 1000.0;
        u++;
    }
    snprintf(buf, cap, "%.2f %s", v, units[u]);
}

/*
 * Strict UTF-8 check (no overlong forms, no surrogates, nothing above
 * U+10FFFF), as Rust's str::from_utf8. Also refuses NUL bytes: they are
 * valid UTF-8 but never valid JSON outside a string nor inside one (raw
 * control characters), and jansson's messages for them are confusing.
 * Returns the offset of the first bad byte, or len when all is well;
 * *is_nul tells which rule failed.
 */
uint64_t amg_utf8_check(const uint8_t *s, uint64_t len, int *is_nul)
{
    uint64_t i = 0;

    *is_nul = 0;
    while (i < len) {
        uint8_t c = s[i];
        uint32_t cp;
        int n, k;

        if (c == 0) {
            *is_nul = 1;
            return i;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (len - i <= (uint64_t)n)
            return i;
        for (k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return i;
        i += (uint64_t)n + 1;
    }
    return len;
}

#define EDIT_MAX 64

size_t amg_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j;
    size_t row[EDIT_MAX + 1], diag, up;

    if (la > EDIT_MAX || lb > EDIT_MAX)
        return SIZE_MAX;
    for (j = 0; j <= lb; j++)
        row[j] = j;
    for (i = 1; i <= la; i++) {
        diag = row[0];
        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t best = diag + (a[i - 1] != b[j - 1]);

            up = row[j];
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

int amg_is_build_exe(void)
{
#if defined(AMG_BUILD_EXE)
    char self[PATH_MAX], *build = realpath(AMG_BUILD_EXE, NULL);
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    int same = 0;

    if (n > 0 && build) {
        self[n] = '\0';
        same = strcmp(self, build) == 0;
    }
    free(build);
    return same;
#else
    return 0;
#endif
}
