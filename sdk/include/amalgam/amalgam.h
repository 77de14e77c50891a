/* SPDX-License-Identifier: Apache-2.0 */
/*
 * amalgam/amalgam.h - everything a strategy plugin needs, in one include.
 */
#ifndef AMALGAM_AMALGAM_H
#define AMALGAM_AMALGAM_H

#include "version.h"
#include "status.h"
#include "tensor.h"
#include "rng.h"
#include "kernels.h"
#include "host.h"
#include "plugin.h"

#endif /* AMALGAM_AMALGAM_H */
