/* SPDX-License-Identifier: Apache-2.0 */
/*
 * amalgam/version.h - release and ABI version numbers.
 *
 * The release version names the amalgam distribution. The ABI version is what
 * a plugin is checked against when it is loaded: its major must equal the
 * host's, its minor may be lower than the host's (older plugins keep working).
 */
#ifndef AMALGAM_VERSION_H
#define AMALGAM_VERSION_H

/* Release version of the amalgam distribution these headers come from. */
#define AMG_VERSION_MAJOR 0
#define AMG_VERSION_MINOR 1
#define AMG_VERSION_PATCH 0
#define AMG_VERSION_STRING "0.1.0"

/* Plugin ABI version. Bumping the major breaks every existing plugin. */
#define AMG_ABI_MAJOR 0
#define AMG_ABI_MINOR 1

#endif /* AMALGAM_VERSION_H */
