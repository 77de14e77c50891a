/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"
/* placeholder: being written */
#include "commands.h"
int amg_cmd_inspect(int argc, char **argv) { (void)argc; (void)argv; return 1; }
