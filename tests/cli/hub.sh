#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# `amalgam fetch`, `amalgam cache` and Hub references in pipelines, against
# tests/hub/fake_hub.py over real HTTP: the cache layout file by file,
# resume after a dropped connection, a corrupt blob, offline mode, two
# concurrent fetches, refused server names, the token kept out of all
# output and away from the CDN, gated / missing errors, and a merge of
# models named org/name.
. "${top_srcdir:-.}/tests/cli/lib.sh"

if [ -z "${PYTHON:-}" ]; then
    echo "skip: no Python 3 (PYTHON is empty) to run the fake Hub"; exit 77
fi
use_built_plugins
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN HF_HUB_OFFLINE TRANSFORMERS_OFFLINE \
      HF_HOME HUGGINGFACE_HUB_CACHE AMALGAM_CA_BUNDLE
HF_TOKEN_PATH=$T/no-token
export HF_TOKEN_PATH

# models for the merge, served as repositories
"$AMALGAM" synth --family "$T/fam" --experts 2 >/dev/null 2>&1 ||
    { echo "FAIL: synth"; exit 1; }
"$PYTHON" "${top_srcdir:-.}/tests/hub/fake_hub.py" --port-file "$T/ports" \
    --timeout 300 --serve fam/base="$T/fam/base" \
    --serve fam/expert-1="$T/fam/expert-1" \
    --serve fam/expert-2="$T/fam/expert-2" &
HUB_PID=$!
trap 'kill $HUB_PID 2>/dev/null; rm -rf "$T"' EXIT
i=0
while [ ! -s "$T/ports" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -s "$T/ports" ] || { echo "FAIL: the fake Hub did not start"; exit 1; }
read -r PORT CDN_PORT <"$T/ports"
HUB=http://127.0.0.1:$PORT
HF_ENDPOINT=$HUB
HF_HUB_CACHE=$T/cache
export HF_ENDPOINT HF_HUB_CACHE
COMMIT=$(awk '$1 == "acme/tiny" { print $2 }' "$T/ports")
REPO=$T/cache/models--acme--tiny
SNAP=$REPO/snapshots/$COMMIT
ctl() { "$PYTHON" -c 'import sys, urllib.request as u
print(u.urlopen(sys.argv[1]).read().decode())' "$HUB/_ctl$1"; }
# sha256 / git sha1 of a file, from Python (independent of the C code)
sha256() { "$PYTHON" -c 'import hashlib, sys
print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$1"; }
gitsha() { "$PYTHON" -c 'import hashlib, sys
d = open(sys.argv[1], "rb").read()
print(hashlib.sha1(b"blob %d\0" % len(d) + d).hexdigest())' "$1"; }

# --- a plain fetch and the cache layout, file by file
expect_rc 0 "fetch acme/tiny" "$AMALGAM" fetch acme/tiny -q
if [ "$(cat "$T/out")" = "$SNAP" ]; then pass "prints the snapshot folder"
else fail "printed '$(cat "$T/out")', wanted '$SNAP'"; fi
if [ "$(cat "$REPO/refs/main")" = "$COMMIT" ] &&
   [ "$(wc -c <"$REPO/refs/main")" -eq 40 ]; then
    pass "refs/main holds the commit without a newline"
else fail "refs/main is '$(cat "$REPO/refs/main")'"; fi
for f in model-00001-of-00002.safetensors model-00002-of-00002.safetensors; do
    t=$(readlink "$SNAP/$f"); h=$(sha256 "$SNAP/$f")
    if [ "$t" = "../../blobs/$h" ] && [ -f "$REPO/blobs/$h" ] &&
       [ ! -L "$REPO/blobs/$h" ]; then
        pass "$f links ../../blobs/<its sha256>"
    else fail "$f links '$t' (sha256 $h)"; fi
done
for f in config.json model.safetensors.index.json tokenizer.json; do
    t=$(readlink "$SNAP/$f"); h=$(gitsha "$SNAP/$f")
    if [ "$t" = "../../blobs/$h" ]; then pass "$f links ../../blobs/<git sha1>"
    else fail "$f links '$t' (git sha1 $h)"; fi
done
for f in README.md extra/notes.txt; do
    if [ -e "$SNAP/$f" ]; then fail "$f was fetched (a merge does not need it)"
    else pass "$f is not fetched by default"; fi
done
n=$(ls "$REPO/blobs" | wc -l)
if [ "$n" -eq 5 ]; then pass "five blobs, no leftovers"
else fail "blobs/ holds $n files"; ls -la "$REPO/blobs"; fi
[ -f "$T/cache/CACHEDIR.TAG" ] && pass "CACHEDIR.TAG written" ||
    fail "no CACHEDIR.TAG"
expect_rc 0 "--include fetches a nested file" \
    "$AMALGAM" fetch acme/tiny --include 'extra/*' -q
if [ "$(readlink "$SNAP/extra/notes.txt")" = \
     "../../../blobs/$(gitsha "$SNAP/extra/notes.txt")" ]; then
    pass "nested file links ../../../blobs/<git sha1>"
else fail "extra/notes.txt links '$(readlink "$SNAP/extra/notes.txt")'"; fi

# --- resume after a dropped connection
rm -rf "$T/cache"
ctl "?fault=drop&path=model-00001-of-00002.safetensors" >/dev/null
expect_rc 0 "fetch survives a dropped connection" "$AMALGAM" fetch acme/tiny -v
expect_out "resuming at byte [1-9]" "the transfer resumed with Range"
f=$SNAP/model-00001-of-00002.safetensors
if [ "$(readlink "$f")" = "../../blobs/$(sha256 "$f")" ]; then
    pass "the resumed file is complete and correct"
else fail "the resumed file is wrong"; fi

# --- a corrupt blob
rm -rf "$T/cache"
ctl "?fault=sha&path=model-00002-of-00002.safetensors" >/dev/null
expect_rc 1 "a corrupt blob fails the fetch" "$AMALGAM" fetch acme/tiny
expect_out "model-00002-of-00002.safetensors' from 'acme/tiny' is corrupt" \
    "the error names the file"
if ls "$REPO/blobs" | grep -q -e 3c0cf35 -e incomplete; then
    fail "the corrupt blob or a temporary file was left"; ls "$REPO/blobs"
else pass "no blob is left for the corrupt file"; fi
[ -e "$SNAP/model-00002-of-00002.safetensors" ] &&
    fail "a link to the corrupt file was made" || pass "no link to it"

# --- offline
expect_rc 1 "offline: an incomplete snapshot is a miss" \
    env HF_HUB_OFFLINE=1 "$AMALGAM" fetch acme/tiny
expect_out "HF_HUB_OFFLINE is set" "the offline miss says why"
expect_rc 0 "refetch completes the snapshot" "$AMALGAM" fetch acme/tiny -q
kill $HUB_PID; wait $HUB_PID 2>/dev/null
expect_rc 0 "offline hit with the Hub down" \
    env HF_HUB_OFFLINE=1 "$AMALGAM" fetch acme/tiny
expect_out "^$SNAP\$" "offline hit prints the snapshot"
expect_rc 0 "TRANSFORMERS_OFFLINE works too" \
    env TRANSFORMERS_OFFLINE=yes "$AMALGAM" fetch acme/tiny
expect_rc 1 "offline miss" env HF_HUB_OFFLINE=1 "$AMALGAM" fetch acme/other
expect_out "'acme/other@main' is not in the local cache and HF_HUB_OFFLINE" \
    "the offline miss names the model"
expect_rc 1 "online with the Hub down fails" "$AMALGAM" fetch acme/other
expect_out "cannot reach $HUB" "a network error names the endpoint"

# the Hub again, for the rest
rm -f "$T/ports"
"$PYTHON" "${top_srcdir:-.}/tests/hub/fake_hub.py" --port-file "$T/ports" \
    --timeout 300 --serve fam/base="$T/fam/base" \
    --serve fam/expert-1="$T/fam/expert-1" \
    --serve fam/expert-2="$T/fam/expert-2" &
HUB_PID=$!
i=0
while [ ! -s "$T/ports" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
read -r PORT CDN_PORT <"$T/ports"
HUB=http://127.0.0.1:$PORT
HF_ENDPOINT=$HUB
export HF_ENDPOINT

# --- two concurrent fetches of one repository (slow, so they overlap)
rm -rf "$T/cache"
ctl "?fault=slow&path=model-00001-of-00002.safetensors&count=2&delay=0.05" \
    >/dev/null
"$AMALGAM" fetch acme/tiny -q >"$T/c1" 2>&1 & P1=$!
"$AMALGAM" fetch acme/tiny -q >"$T/c2" 2>&1 & P2=$!
wait $P1; r1=$?; wait $P2; r2=$?
if [ $r1 -eq 0 ] && [ $r2 -eq 0 ]; then pass "both concurrent fetches succeed"
else fail "concurrent fetches: exit $r1 and $r2"; cat "$T/c1" "$T/c2"; fi
ok=1
for f in "$SNAP"/*.safetensors; do
    [ "$(readlink "$f")" = "../../blobs/$(sha256 "$f")" ] || ok=0
done
n=$(ls "$REPO/blobs" | wc -l)
if [ $ok -eq 1 ] && [ "$n" -eq 5 ]; then
    pass "after concurrent fetches: five correct blobs, no temporary files"
else fail "after concurrent fetches: $n blobs"; ls -la "$REPO/blobs"; fi

# --- names from a malicious listing are refused before anything is written
for repo in $(awk '$1 ~ /^evil\// { print $1 }' "$T/ports"); do
    expect_rc 1 "$repo: a bad file name is refused" "$AMALGAM" fetch "$repo"
    expect_out "refusing the file name" "$repo: the error says why"
    d=$T/cache/models--$(echo "$repo" | sed 's|/|--|')
    if [ -e "$d/snapshots" ] || [ -e "$d/blobs" ]; then
        fail "$repo: something was written"; find "$d"
    else pass "$repo: nothing was written"; fi
done
[ -e "$T/escape.txt" ] || [ -e "$T/cache/escape.txt" ] &&
    fail "a file escaped the cache" || pass "no file escaped the cache"

# --- the token: sent to the Hub, never to the CDN, never printed
expect_rc 1 "a private repository without a token is not found" \
    "$AMALGAM" fetch acme/private
expect_out "repository 'acme/private' was not found .*set HF_TOKEN" \
    "the not-found error advises HF_TOKEN"
: >"$T/all"
for v in "" -v; do
    expect_rc 0 "a private repository with HF_TOKEN ${v:-(quiet)}" \
        env HF_TOKEN=secret-token-123 "$AMALGAM" fetch acme/private $v
    cat "$T/out" >>"$T/all"
    rm -rf "$T/cache/models--acme--private"
done
expect_rc 1 "gated repository" \
    env HF_TOKEN=secret-token-123 "$AMALGAM" fetch acme/gated -v
cat "$T/out" >>"$T/all"
expect_out "'acme/gated' is a gated repository: accept its license at $HUB/acme/gated" \
    "the gated error says what to do"
printf 'secret-token-123\n' >"$T/token"
expect_rc 0 "the token file is read" \
    env HF_TOKEN_PATH="$T/token" "$AMALGAM" fetch acme/private -v
cat "$T/out" >>"$T/all"
if grep -q secret-token "$T/all"; then fail "the token was printed"
else pass "the token appears in no output (also with -v)"; fi
ctl /log >"$T/log"
if grep -q '"hub_auth": \[.*"Bearer secret-token-123"' "$T/log"; then
    pass "the Hub received the token"
else fail "the Hub never received the token"; fi
if "$PYTHON" -c 'import json, sys
cdn = json.load(open(sys.argv[1]))["cdn_auth"]
sys.exit(0 if cdn and all(a is None for a in cdn) else 1)' "$T/log"; then
    pass "the CDN (another host) never received an Authorization header"
else fail "the CDN received Authorization"; cat "$T/log"; fi

# --- other errors
expect_rc 1 "missing repository" "$AMALGAM" fetch acme/nope
expect_out "repository 'acme/nope' was not found on $HUB" "not-found names it"
expect_rc 1 "missing revision" "$AMALGAM" fetch acme/tiny@nope
expect_out "revision 'nope' was not found in 'acme/tiny': check" \
    "revision error says what to check"
expect_rc 2 "a local path is not a Hub id" "$AMALGAM" fetch ./here
expect_rc 2 "bad id" "$AMALGAM" fetch hf://acme/../x

# --- a merge of models named org/name, through the Hub
# in a folder without fam/ beside it, so org/name cannot be a local path
mkdir -p "$T/elsewhere"
cat >"$T/elsewhere/p.yaml" <<'YAML'
merge_method: linear
models:
  - model: fam/expert-1
    parameters:
      weight: 0.5
  - model: hf://fam/expert-2@main
    parameters:
      weight: 0.5
dtype: float32
YAML
expect_rc 0 "merge org/name models fetched from the Hub" \
    "$AMALGAM" merge "$T/elsewhere/p.yaml" "$T/hubmerge" -q
cat >"$T/local.yaml" <<YAML
merge_method: linear
models:
  - model: $T/fam/expert-1
    parameters:
      weight: 0.5
  - model: $T/fam/expert-2
    parameters:
      weight: 0.5
dtype: float32
YAML
expect_rc 0 "the same merge from local folders" \
    "$AMALGAM" merge "$T/local.yaml" "$T/localmerge" -q
if cmp -s "$T/hubmerge/model.safetensors" "$T/localmerge/model.safetensors"
then pass "Hub and local merges are byte-identical"
else fail "Hub and local merges differ"; ls -la "$T/hubmerge" "$T/localmerge"; fi
kill $HUB_PID; wait $HUB_PID 2>/dev/null
expect_rc 0 "offline merge from the cache" \
    env HF_HUB_OFFLINE=1 "$AMALGAM" merge "$T/elsewhere/p.yaml" "$T/offmerge" -q
sed 's/fam\/expert-1/fam\/expert-9/' "$T/elsewhere/p.yaml" >"$T/miss.yaml"
expect_rc 1 "offline merge of an uncached model fails" \
    env HF_HUB_OFFLINE=1 "$AMALGAM" merge "$T/miss.yaml" "$T/x" -q
expect_out "miss.yaml:[0-9]+:[0-9]+: 'fam/expert-9@main' is not in the local cache" \
    "the error points at the pipeline line"

# --- cache ls / rm
expect_rc 0 "cache ls" "$AMALGAM" cache ls
expect_out "^acme/tiny +[0-9.]+ kB +main=$(echo "$COMMIT" | cut -c1-7)" \
    "cache ls lists acme/tiny with its size and ref"
expect_out "^fam/expert-1 " "cache ls lists fam/expert-1"
expect_rc 0 "cache rm" "$AMALGAM" cache rm acme/tiny
expect_out "removed acme/tiny" "cache rm says what it removed"
[ -e "$REPO" ] && fail "cache rm left the folder" || pass "the folder is gone"
expect_rc 1 "cache rm of a missing model" "$AMALGAM" cache rm acme/tiny
expect_out "'acme/tiny' is not in the cache" "says it is not there"
expect_rc 2 "cache rm refuses a revision" "$AMALGAM" cache rm acme/tiny@main
finish
