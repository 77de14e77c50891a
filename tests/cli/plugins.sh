#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# `amalgam plugins`: the table, one strategy in full, --json, unknown names
# with a suggestion, broken and insecure plugins, the search path, and
# usage errors. The plugins are copied into a private folder first so the
# permission check does not depend on the build tree's umask.
. "${top_srcdir:-.}/tests/cli/lib.sh"
: "${TEST_PLUGIN_DIR:?}" "${EXAMPLE_PLUGIN_DIR:?}"

# json_check FILE PYEXPR DESC: assert a Python expression over j = the
# parsed JSON in FILE
json_check() {
    if [ -z "${PYTHON:-}" ]; then return 0; fi
    if "$PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2" 2>"$T/pyerr"; then
        pass "$3"
    else
        fail "$3: $2"; sed 's/^/    /' "$T/pyerr"
    fi
}

AMALGAM_PLUGIN_CACHE=$T/cache/plugin-cache.json
AMALGAM_PLUGIN_SYSTEM_PATH=
export AMALGAM_PLUGIN_CACHE AMALGAM_PLUGIN_SYSTEM_PATH
unset AMALGAM_PLUGIN_PATH
# messages name files by their real path
R=$(cd "$T" && pwd -P)
P=$R/plug D=$R/dir E=$R/empty
mkdir -m 755 "$P" "$D" "$E"
for f in "$TEST_PLUGIN_DIR/good.so" "$TEST_PLUGIN_DIR/bad_magic.so" \
         "$EXAMPLE_PLUGIN_DIR/median.so"; do
    cp "$f" "$P/" && chmod 755 "$P/${f##*/}"
done
cp "$P/good.so" "$D/good.so"

# --- usage
expect_rc 0 "--help exits 0" "$AMALGAM" plugins --help
expect_out '^usage: amalgam plugins \[--json\] \[--plugin FILE\]\.\.\.' \
    "--help prints the usage line"
expect_rc 2 "unknown option is a usage error" "$AMALGAM" plugins --frob
expect_out "^error: unknown option '--frob'$" "unknown option is named"
expect_rc 2 "--plugin without a file is a usage error" \
    "$AMALGAM" plugins --plugin
expect_out "^error: option '--plugin' needs a file$" "missing file is reported"
expect_rc 2 "--plugin-path without a folder is a usage error" \
    "$AMALGAM" plugins --plugin-path
expect_rc 2 "two names are a usage error" "$AMALGAM" plugins a b
expect_out "^error: unexpected argument 'b'" "extra name is named"

# --- the table
expect_rc 0 "list with --plugin" "$AMALGAM" plugins --plugin "$P/median.so"
expect_out '^ID +MODULE +VERSION +DEVICES +CAPABILITIES +SUMMARY$' \
    "table header"
expect_out '^median +median +1\.0\.0 +cpu +elementwise,reentrant +elementwise median of the input models$' \
    "median row: module, version, devices, capabilities, summary"
expect_rc 0 "list again (from the cache)" \
    "$AMALGAM" plugins --plugin="$P/median.so"
expect_out '^median +median +1\.0\.0 +cpu +elementwise,reentrant ' \
    "same row from the cache"
[ -s "$AMALGAM_PLUGIN_CACHE" ] && pass "cache written" ||
    fail "cache not written at $AMALGAM_PLUGIN_CACHE"

expect_rc 0 "list two plugins" \
    "$AMALGAM" plugins --plugin "$P/median.so" --plugin "$P/good.so"
expect_out '^good_first +good +1\.0\.0 +cpu +elementwise,reentrant +the first input, unchanged \(test plugin\)$' \
    "good_first row"
expect_out '^good_mean +good +1\.0\.0 +cpu +elementwise,reentrant +weighted mean of the inputs \(test plugin\)$' \
    "good_mean row"
sed -n '2,$s/ .*//p' "$T/out" | tr '\n' ' ' >"$T/ids"
[ "$(cat "$T/ids")" = "good_first good_mean median " ] &&
    pass "rows sorted by id" || fail "rows not sorted by id: $(cat "$T/ids")"

# --- one strategy in full
expect_rc 0 "show median" "$AMALGAM" plugins --plugin "$P/median.so" median
expect_out '^strategy: +median$' "detail names the strategy"
expect_out '^module: +median 1\.0\.0 \(Apache-2\.0\)$' "detail: module line"
expect_out "^path: +$P/median\.so$" "detail: path"
expect_out '^inputs: +2\.\.any$' "detail: inputs"
expect_out '^capabilities: +elementwise, reentrant$' "detail: capabilities"
expect_out '^  out\[i\] = median' "detail: help text"
expect_out '^  include_base +boolean, global, default false$' \
    "detail: parameter line"
expect_out '^ +count the base model as one more voter' "detail: parameter help"

expect_rc 0 "show good_mean" "$AMALGAM" plugins --plugin "$P/good.so" good_mean
expect_out '^inputs: +1\.\.any$' "good_mean: inputs"
expect_out '^  weight +number, per-model, default 1, range >= 0$' \
    "good_mean: weight is a per-model number, at least 0"
expect_out '^ +weight of the model \(0 or more\)$' "good_mean: weight's help"
expect_out "^  mode +string, global, default 'plain', choices plain\\|scaled$" \
    "good_mean: mode is a global string with choices"
expect_rc 0 "show good_first" "$AMALGAM" plugins --plugin "$P/good.so" good_first
expect_out '^parameters: none$' "good_first has no parameters"

# --- JSON
expect_rc 0 "list --json" "$AMALGAM" plugins --json --plugin "$P/median.so"
cp "$T/out" "$T/list.json"
json_check "$T/list.json" \
    "[s['id'] for s in j['strategies']] == ['median'] and j['strategies'][0]['devices'] == ['cpu'] and j['strategies'][0]['capabilities'] == ['elementwise', 'reentrant'] and j['strategies'][0]['max_inputs'] is None and j['strategies'][0]['min_inputs'] == 2" \
    "list JSON: ids, devices, capabilities, inputs"
expect_rc 0 "show --json" "$AMALGAM" plugins --json --plugin "$P/median.so" median
cp "$T/out" "$T/one.json"
json_check "$T/one.json" \
    "j['id'] == 'median' and j['license'] == 'Apache-2.0' and j['params'] == [{'name': 'include_base', 'type': 'boolean', 'scope': 'global', 'required': False, 'default': False, 'min': None, 'max': None, 'min_exclusive': False, 'max_exclusive': False, 'choices': None, 'gradient': False, 'help': 'count the base model as one more voter (needs a base model)'}]" \
    "detail JSON: the parameter schema"

expect_rc 0 "show good_mean --json" \
    "$AMALGAM" plugins --json --plugin "$P/good.so" good_mean
cp "$T/out" "$T/good.json"
json_check "$T/good.json" \
    "[(p['name'], p['type'], p['scope'], p['default'], p['min'], p['choices']) for p in j['params']] == [('weight', 'number', 'per-model', 1.0, 0.0, None), ('mode', 'string', 'global', 'plain', None, ['plain', 'scaled'])]" \
    "good_mean JSON: both parameters"

# --- unknown names
expect_rc 1 "unknown name fails" "$AMALGAM" plugins --plugin "$P/median.so" mediam
expect_out "^error: no strategy 'mediam'; did you mean 'median'\?$" \
    "a near name is suggested"
expect_rc 1 "far name fails" "$AMALGAM" plugins --plugin "$P/median.so" linearity
expect_out "^error: no strategy 'linearity' \(run 'amalgam plugins' for the list\)$" \
    "no suggestion for a far name"

# --- broken, missing and insecure plugins
expect_rc 1 "broken plugin fails" "$AMALGAM" plugins --plugin "$P/bad_magic.so"
expect_out "^error: .*'$P/bad_magic\.so'.*magic" "broken plugin's message"
expect_rc 1 "missing plugin file fails" "$AMALGAM" plugins --plugin "$T/nope.so"
expect_out "^error: cannot open plugin '$T/nope\.so': No such file or directory$" \
    "missing plugin file is named"
chmod 775 "$P"
expect_rc 1 "plugin in a group-writable folder is refused" \
    "$AMALGAM" plugins --plugin "$P/median.so"
expect_out "^error: '$P' is writable by others: fix with chmod go-w '$P', or pass --allow-insecure-plugins$" \
    "refusal says how to fix it"
expect_rc 0 "--allow-insecure-plugins accepts it" \
    "$AMALGAM" plugins --allow-insecure-plugins --plugin "$P/median.so"
chmod 755 "$P"

# --- the search path
expect_rc 0 "--plugin-path finds good.so" "$AMALGAM" plugins --plugin-path "$D"
expect_out "^[a-z][a-z0-9_]* +good " "good's strategies are listed"
expect_rc 0 "AMALGAM_PLUGIN_PATH finds good.so" \
    env AMALGAM_PLUGIN_PATH="$E:$D" "$AMALGAM" plugins
expect_out "^[a-z][a-z0-9_]* +good " "good's strategies are listed via the env"
expect_rc 1 "a relative AMALGAM_PLUGIN_PATH entry is refused" \
    env AMALGAM_PLUGIN_PATH=plugins "$AMALGAM" plugins
expect_out "^error: plugin directory 'plugins' in AMALGAM_PLUGIN_PATH is relative: give an absolute path$" \
    "relative entry is named"
expect_rc 0 "nothing found is not an error" "$AMALGAM" plugins
expect_out '^no strategy plugins found \(searched: no directories\)$' \
    "empty search says so"
expect_rc 0 "nothing found in an empty folder" \
    "$AMALGAM" plugins --plugin-path "$E"
expect_out "^no strategy plugins found \(searched: $E\)$" \
    "empty search names the folder"
expect_rc 1 "two copies of one plugin conflict" \
    "$AMALGAM" plugins --plugin "$P/good.so" --plugin-path "$D"
expect_out "^error: .*'$P/good\.so'" "conflict names the first file"
expect_out "'$D/good\.so'" "conflict names the second file"
finish
