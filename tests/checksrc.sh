#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# checksrc.sh - the banned-function check (after curl's checksrc): these
# calls have no bound on what they write or no way to report errors, so the
# tree must not use them. Also requires the SPDX line in every C file.
set -u
src=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$src" || exit 1
files=$(find host sdk plugins kernels registry tests -name '*.[ch]' 2>/dev/null | sort)
[ -n "$files" ] || { echo "checksrc: no C files found under $src"; exit 1; }
bad=0
# strip // and /* */ one-line comments and string literals before matching
for f in $files; do
    hits=$(sed -e 's|/\*.*\*/||g' -e 's|//.*$||' -e 's/"[^"]*"//g' "$f" |
           grep -nE '(^|[^A-Za-z0-9_])(sprintf|vsprintf|strcpy|strcat|strtok|gets|atoi|atol|atoll)[[:space:]]*\(' |
           grep -vE '(snprintf|vsnprintf)[[:space:]]*\(' )
    if [ -n "$hits" ]; then
        echo "$hits" | sed "s|^|$f:|"
        bad=1
    fi
    head -3 "$f" | grep -q 'SPDX-License-Identifier' ||
        { echo "$f: missing SPDX-License-Identifier line"; bad=1; }
done
n=$(echo "$files" | wc -l)
if [ "$bad" -ne 0 ]; then
    echo "checksrc: banned functions or missing SPDX lines (use snprintf, memcpy, strtol)"
    exit 1
fi
echo "checksrc: $n files clean"
