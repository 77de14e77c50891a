/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json_kind.h - a JSON value's type in words, for the "expected X, got Y"
 * messages of every reader of JSON files.
 */
#ifndef AMG_JSON_KIND_H
#define AMG_JSON_KIND_H

#include <jansson.h>

/* "an object", "an array", "a string", "an integer", "a fractional
 * number", "a boolean" or "null". */
const char *amg_json_kind(const json_t *v);

#endif
