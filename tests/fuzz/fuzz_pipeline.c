/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_pipeline.c - libFuzzer target for pipeline YAML: libyaml events, the
 * node tree (anchors, depth limit) and the pipeline checks.
 *
 * A refusal must carry a status and name the file; an accepted pipeline
 * must be internally consistent (output step exists, step references
 * point backwards, every step has a method).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_source(const amg_source *s, size_t step)
{
    if (!s->model)
        abort();
    if (s->ref == AMG_REF_STEP && s->step >= step)
        abort();
    if (s->has_range && s->range[0] > s->range[1])
        abort();
}

static void check_step(const amg_step *st, size_t idx)
{
    size_t i, j;

    if (!st->name || !st->method)
        abort();
    if (st->base)
        check_source(st->base, idx);
    for (i = 0; i < st->n_models; i++)
        check_source(&st->models[i], idx);
    for (i = 0; i < st->n_slices; i++)
        for (j = 0; j < st->slices[i].n_sources; j++)
            check_source(&st->slices[i].sources[j], idx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    amg_pipeline p;
    amg_err err;
    char *text;
    size_t i;

    /* exactly size bytes, so ASan sees any read past the end */
    text = malloc(size ? size : 1);
    if (!text)
        return 0;
    if (size)
        memcpy(text, data, size);
    amg_err_clear(&err);
    if (amg_pipeline_parse(&p, "fuzz.yaml", "/nonexistent", text, size,
                           &err) != AMG_OK) {
        if (err.status == AMG_OK || !strstr(err.msg, "fuzz.yaml"))
            abort();
        free(text);
        return 0;
    }
    if (p.n_steps == 0 || p.output >= p.n_steps)
        abort();
    for (i = 0; i < p.n_steps; i++)
        check_step(&p.steps[i], i);
    amg_pipeline_free(&p);
    free(text);
    return 0;
}
