/* SPDX-License-Identifier: Apache-2.0 */
/*
 * output_meta.h - everything in a merged model folder besides the tensors:
 * config.json (the template model's, with the dtype and layer count of the
 * output), tokenizer and generation files, the chat template, a README.md
 * model card and the pipeline itself (amalgam-pipeline.yaml).
 */
#ifndef AMG_OUTPUT_META_H
#define AMG_OUTPUT_META_H

#include "error.h"
#include "model_writer.h"
#include "plan.h"

/* Refuse, before any tensor is written, what output_meta_write would fail
 * on for reasons of the pipeline (a named chat template it cannot
 * expand). */
int amg_output_meta_check(const amg_plan *plan, amg_err *err);

/* Write the side files of plan's output into w's staging folder. */
int amg_output_meta_write(amg_model_writer *w, const amg_plan *plan,
                          amg_err *err);

#endif
