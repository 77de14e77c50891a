# SPDX-License-Identifier: Apache-2.0
"""st_reader.py - an independent safetensors reader (Python + numpy only).

Tests use it to check what amalgam writes without trusting amalgam's own
reader: it validates the file the way the reference implementation does
(header length, JSON, dtypes, contiguous offsets, exact file coverage) and
decodes every dtype from its definition.

    read_file(path)  -> (metadata, {name: array})
    read_model(path) -> (info, {name: array})   folder, index or file

Float types come back as float64 arrays, integers in their own numpy type,
BOOL as numpy bool. Run as a script to list tensors:

    python3 st_reader.py FILE_OR_FOLDER    # "name dtype shape sum" per line
"""

import json
import os
import sys

import numpy as np

MAX_HEADER = 100_000_000
INDEX_NAME = "model.safetensors.index.json"


def _f8_table(exp_bits, man_bits, bias, ieee_specials):
    """All 256 values of an 8-bit float with the given layout, decoded from
    the definition: subnormals at exponent 0, and at the top exponent
    either IEEE inf/NaN (E5M2) or, for E4M3FN, only S.1111.111 is NaN and
    the rest are ordinary numbers."""
    table = np.empty(256, dtype=np.float64)
    top = (1 << exp_bits) - 1
    for b in range(256):
        sign = -1.0 if b & 0x80 else 1.0
        e = (b >> man_bits) & top
        m = b & ((1 << man_bits) - 1)
        if ieee_specials and e == top:
            v = float("inf") if m == 0 else float("nan")
        elif not ieee_specials and e == top and m == (1 << man_bits) - 1:
            v = float("nan")
        elif e == 0:
            v = (m / (1 << man_bits)) * 2.0 ** (1 - bias)
        else:
            v = (1 + m / (1 << man_bits)) * 2.0 ** (e - bias)
        table[b] = sign * v
    return table


F8_E4M3_TABLE = _f8_table(4, 3, 7, ieee_specials=False)
F8_E5M2_TABLE = _f8_table(5, 2, 15, ieee_specials=True)

# dtype -> (bytes per element, decoder from raw little-endian bytes)
DTYPES = {
    "F64": (8, lambda b: np.frombuffer(b, "<f8").astype(np.float64)),
    "F32": (4, lambda b: np.frombuffer(b, "<f4").astype(np.float64)),
    "F16": (2, lambda b: np.frombuffer(b, "<f2").astype(np.float64)),
    "BF16": (2, lambda b: (np.frombuffer(b, "<u2").astype(np.uint32) << 16)
             .view(np.float32).astype(np.float64)),
    "F8_E4M3": (1, lambda b: F8_E4M3_TABLE[np.frombuffer(b, np.uint8)]),
    "F8_E5M2": (1, lambda b: F8_E5M2_TABLE[np.frombuffer(b, np.uint8)]),
    "I64": (8, lambda b: np.frombuffer(b, "<i8").astype(np.int64)),
    "I32": (4, lambda b: np.frombuffer(b, "<i4").astype(np.int32)),
    "I16": (2, lambda b: np.frombuffer(b, "<i2").astype(np.int16)),
    "I8": (1, lambda b: np.frombuffer(b, np.int8).copy()),
    "U8": (1, lambda b: np.frombuffer(b, np.uint8).copy()),
    "BOOL": (1, lambda b: np.frombuffer(b, np.uint8) != 0),
}
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    dup = {k for k in keys if keys.count(k) > 1}
    assert not dup, "duplicate JSON keys: %s" % sorted(dup)
    return dict(pairs)


def _is_uint(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def read_header(path):
    """Validate path's header and layout; returns (metadata, entries) with
    entries sorted by data offset as [(name, dtype, shape, begin, end)]
    and begin/end made absolute file offsets."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        assert len(head) == 8, "%s: shorter than 8 bytes" % path
        n = int.from_bytes(head, "little")
        assert n <= MAX_HEADER, "%s: header length %d over %d" % (
            path, n, MAX_HEADER)
        assert 8 + n <= size, "%s: header length %d past end of file (%d)" % (
            path, n, size)
        raw = f.read(n)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise AssertionError("%s: header is not UTF-8: %s" % (path, e))
    assert text.lstrip().startswith("{"), "%s: header is not a JSON object" % path
    try:
        hdr = json.loads(text, object_pairs_hook=_no_duplicates)
    except (AssertionError, ValueError) as e:
        raise AssertionError("%s: bad header JSON: %s" % (path, e))
    assert isinstance(hdr, dict), "%s: header is not a JSON object" % path

    meta = hdr.pop("__metadata__", {})
    assert isinstance(meta, dict), "%s: __metadata__ is not an object" % path
    for k, v in meta.items():
        assert isinstance(v, str), "%s: __metadata__[%r] is not a string" % (
            path, k)

    entries = []
    for name, t in hdr.items():
        where = "%s: tensor %r" % (path, name)
        assert isinstance(t, dict), "%s: not an object" % where
        assert set(t) == {"dtype", "shape", "data_offsets"}, (
            "%s: keys %s, expected dtype, shape, data_offsets" % (
                where, sorted(t)))
        assert t["dtype"] in DTYPES, "%s: unknown dtype %r" % (
            where, t["dtype"])
        shape = t["shape"]
        assert isinstance(shape, list) and all(_is_uint(d) for d in shape), (
            "%s: bad shape %r" % (where, shape))
        offs = t["data_offsets"]
        assert (isinstance(offs, list) and len(offs) == 2
                and all(_is_uint(o) for o in offs)), (
            "%s: bad data_offsets %r" % (where, offs))
        entries.append((name, t["dtype"], tuple(shape), offs[0], offs[1]))

    # contiguous from 0, in offset order, each exactly its shape's bytes,
    # and the last one ends where the file does
    entries.sort(key=lambda e: (e[3], e[4]))
    pos = 0
    out = []
    for name, dtype, shape, b, e in entries:
        where = "%s: tensor %r" % (path, name)
        assert b == pos, "%s: begins at %d, expected %d (gap or overlap)" % (
            where, b, pos)
        want = DTYPES[dtype][0] * int(np.prod(shape, dtype=object))
        assert e - b == want, "%s: %d bytes for %s %s, expected %d" % (
            where, e - b, dtype, list(shape), want)
        out.append((name, dtype, shape, 8 + n + b, 8 + n + e))
        pos = e
    assert 8 + n + pos == size, (
        "%s: data ends at %d but the file has %d bytes (not fully covered)"
        % (path, 8 + n + pos, size))
    return meta, out


def read_file_full(path):
    """(metadata, {name: array}, {name: dtype string})"""
    meta, entries = read_header(path)
    tensors, dtypes = {}, {}
    with open(path, "rb") as f:
        for name, dtype, shape, b, e in entries:
            f.seek(b)
            raw = f.read(e - b)
            assert len(raw) == e - b, "%s: tensor %r truncated" % (path, name)
            # signalling NaNs widen to quiet ones; numpy warns, we don't care
            with np.errstate(invalid="ignore"):
                tensors[name] = DTYPES[dtype][1](raw).reshape(shape)
            dtypes[name] = dtype
    return meta, tensors, dtypes


def read_file(path):
    """(metadata dict, {name: numpy array})"""
    meta, tensors, _ = read_file_full(path)
    return meta, tensors


def read_model_full(path):
    """(info, tensors, dtypes) for a folder, an index file or a single
    .safetensors file. info: {"index": parsed index or None,
    "files": {file name: its __metadata__}}."""
    index_path = None
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, INDEX_NAME)):
            index_path = os.path.join(path, INDEX_NAME)
        else:
            single = os.path.join(path, "model.safetensors")
            assert os.path.exists(single), "%s: no %s or model.safetensors" % (
                path, INDEX_NAME)
            path = single
    elif path.endswith(".json"):
        index_path = path

    if index_path is None:
        meta, tensors, dtypes = read_file_full(path)
        return ({"index": None, "files": {os.path.basename(path): meta}},
                tensors, dtypes)

    with open(index_path, encoding="utf-8") as f:
        try:
            index = json.load(f, object_pairs_hook=_no_duplicates)
        except (AssertionError, ValueError) as e:
            raise AssertionError("%s: bad JSON: %s" % (index_path, e))
    wmap = index.get("weight_map")
    assert isinstance(wmap, dict), "%s: no weight_map object" % index_path
    folder = os.path.dirname(index_path)
    info = {"index": index, "files": {}}
    tensors, dtypes = {}, {}
    nbytes = 0
    for shard in sorted(set(wmap.values())):
        assert isinstance(shard, str) and shard and "/" not in shard and (
            shard not in (".", "..")), "%s: bad shard name %r" % (
                index_path, shard)
        meta, ts, ds = read_file_full(os.path.join(folder, shard))
        info["files"][shard] = meta
        listed = {k for k, v in wmap.items() if v == shard}
        assert set(ts) == listed, (
            "%s: %s holds %s but the index lists %s" % (
                index_path, shard, sorted(set(ts) - listed),
                sorted(listed - set(ts))))
        for k in ts:
            nbytes += DTYPES[ds[k]][0] * ts[k].size
        tensors.update(ts)
        dtypes.update(ds)
    total = index.get("metadata", {}).get("total_size")
    if total is not None:
        assert total == nbytes, "%s: total_size %d but tensors hold %d bytes" % (
            index_path, total, nbytes)
    return info, tensors, dtypes


def read_model(path):
    """(info, {name: numpy array}); see read_model_full."""
    info, tensors, _ = read_model_full(path)
    return info, tensors


def main(argv):
    if len(argv) != 2:
        print("usage: st_reader.py FILE_OR_FOLDER", file=sys.stderr)
        return 2
    _, tensors, dtypes = read_model_full(argv[1])
    for name in sorted(tensors):
        a = tensors[name]
        with np.errstate(invalid="ignore", over="ignore"):
            if dtypes[name] in FLOAT_DTYPES:
                total = repr(float(np.sum(a, dtype=np.float64)))
            else:
                total = str(int(np.sum(a, dtype=np.int64)))
        # one line per tensor even for names with spaces or control bytes
        shown = name if name.isprintable() and " " not in name else json.dumps(name)
        print("%s %s [%s] %s" % (shown, dtypes[name],
                                 ",".join(str(d) for d in a.shape), total))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
