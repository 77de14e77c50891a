/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json_kind.c - a JSON value's type in words (json_kind.h).
 */
#include "config.h"
#include "json_kind.h"

const char *amg_json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:  return "an object";
    case JSON_ARRAY:   return "an array";
    case JSON_STRING:  return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL:    return "a fractional number";
    case JSON_TRUE:
    case JSON_FALSE:   return "a boolean";
    case JSON_NULL:    return "null";
    }
    return "?";
}
