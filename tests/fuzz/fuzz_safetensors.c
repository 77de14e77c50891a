/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_safetensors.c - libFuzzer target for the safetensors header reader.
 *
 * The input is a whole file: u64 little-endian header length N, N header
 * bytes, then the data section. The length is clamped to what the input
 * holds (an N past the end is what amg_st_open rejects before parsing), and
 * the header is copied to its own allocation so ASan catches any read past
 * its end. Validation must never crash, leak or accept an inconsistent
 * layout; the invariants below are checked on every accepted header.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    amg_st_file f;
    amg_err err;
    uint64_t n = 0, pos = 0, data_len;
    uint8_t *hdr;
    size_t i;
    int k;

    if (size < 8)
        return 0;
    for (k = 7; k >= 0; k--)
        n = (n << 8) | data[k];
    if (n > size - 8)
        return 0;
    data_len = size - 8 - n;
    hdr = malloc(n ? (size_t)n : 1);
    if (!hdr)
        return 0;
    memcpy(hdr, data + 8, (size_t)n);
    amg_err_clear(&err);
    if (amg_st_parse_header(&f, "fuzz", hdr, n, data_len, &err) == AMG_OK) {
        /* accepted: the tensors tile the data section exactly, in order,
         * and every one is found by name */
        for (i = 0; i < f.n_tensors; i++) {
            const amg_st_tensor *t = &f.tensors[i];
            if (t->begin != pos || t->end < t->begin ||
                t->end - t->begin != t->numel * amg_dtype_size(t->dtype) ||
                amg_st_find(&f, t->name) != t)
                abort();
            pos = t->end;
        }
        if (pos != data_len)
            abort();
        if (f.n_meta && !amg_st_meta_get(&f, f.meta[0].key))
            abort();
    } else if (err.status == AMG_OK || !err.msg[0] ||
               !strstr(err.msg, "'fuzz'")) {
        abort();  /* every failure names its source */
    }
    amg_st_close(&f);
    free(hdr);
    return 0;
}
