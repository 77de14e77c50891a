#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A small fake Hugging Face Hub for amalgam's registry tests.

Two threaded HTTP servers on 127.0.0.1 with ports the OS picks: the Hub
(API, resolve URLs) and a CDN that serves LFS blobs by redirect, as the
real Hub does. Fixture repositories are built at start; --serve adds a
local folder as a repository. Faults are switched on through the control
endpoint /_ctl?fault=KIND&path=FILE[&count=N][&delay=S]:

  drop   send half of the file, then close the connection
  sha    send the file with one byte changed (same length)
  slow   sleep `delay` seconds between 4 KiB chunks

GET /_ctl/log returns what the CDN and the Hub saw of the Authorization
header. The process exits by itself after --timeout seconds.
"""
import argparse
import hashlib
import http.server
import json
import os
import struct
import sys
import threading
import time
import urllib.parse

TOKEN = "secret-token-123"


def safetensors_bytes(tensors):
    """tensors: {name: (shape, list of float)} as F32."""
    header, data, off = {}, b"", 0
    for name, (shape, values) in sorted(tensors.items()):
        raw = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape,
                        "data_offsets": [off, off + len(raw)]}
        data += raw
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def git_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self, files, gated=False, private=False, bad_names=()):
        self.files = files            # path -> bytes
        self.gated, self.private = gated, private
        self.bad_names = bad_names    # extra names in the listing only
        h = hashlib.sha1()
        for p in sorted(files):
            h.update(p.encode() + b"\0" + files[p])
        self.commit = h.hexdigest()

    @staticmethod
    def lfs(path):
        return path.endswith(".safetensors")

    def entry(self, path):
        data = self.files[path]
        e = {"type": "file", "path": path, "size": len(data),
             "oid": git_sha1(data)}
        if self.lfs(path):
            e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(),
                        "size": len(data), "pointerSize": 134}
        return e

    def tree(self):
        out = [self.entry(p) for p in sorted(self.files)]
        dirs = sorted({p.rsplit("/", 1)[0] for p in self.files if "/" in p})
        out += [{"type": "directory", "path": d, "size": 0,
                 "oid": "0" * 40} for d in dirs]
        for n in self.bad_names:
            out.append({"type": "file", "path": n, "size": 3,
                        "oid": git_sha1(b"bad")})
        return out


def fixture_tiny():
    s1 = safetensors_bytes({"model.layers.0.w": ([64, 64],
                            [float(i % 7) for i in range(4096)])})
    s2 = safetensors_bytes({"lm_head.weight": ([64, 128],
                            [float(i % 5) / 4 for i in range(8192)])})
    index = {"metadata": {"total_size": 4096 * 4 + 8192 * 4},
             "weight_map": {"model.layers.0.w":
                            "model-00001-of-00002.safetensors",
                            "lm_head.weight":
                            "model-00002-of-00002.safetensors"}}
    return {
        "model-00001-of-00002.safetensors": s1,
        "model-00002-of-00002.safetensors": s2,
        "model.safetensors.index.json": json.dumps(index).encode(),
        "config.json": b'{"architectures": ["LlamaForCausalLM"]}\n',
        "tokenizer.json": b'{"version": "1.0", "model": {}}\n',
        "README.md": b"# tiny\n",
        "extra/notes.txt": b"not needed for a merge\n",
    }


def folder_files(path):
    files = {}
    for dirpath, _, names in os.walk(path):
        for n in names:
            full = os.path.join(dirpath, n)
            with open(full, "rb") as f:
                files[os.path.relpath(full, path)] = f.read()
    return files


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.repos = {}
        self.faults = {}   # path -> dict(kind, count, delay)
        self.cdn_auth = []  # Authorization values the CDN saw (None = none)
        self.hub_auth = []
        self.cdn_port = 0

    def take_fault(self, path):
        with self.lock:
            f = self.faults.get(path)
            if not f:
                return None
            f["count"] -= 1
            if f["count"] <= 0:
                del self.faults[path]
            return dict(f)


STATE = State()


class Base(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_err(self, status, code=None, msg=None, extra=None):
        body = json.dumps({"error": msg or code or "error"}).encode()
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        if msg:
            self.send_header("X-Error-Message", msg)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_body(self, data, headers, path=None, status=200, start=0):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if self.command == "HEAD":
            return
        fault = STATE.take_fault(path) if path else None
        if fault and fault["kind"] == "sha":
            data = bytearray(data)
            data[len(data) // 2] ^= 0xFF
            data = bytes(data)
        body = data[start:]
        if fault and fault["kind"] == "drop":
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        step = 4096
        for i in range(0, len(body), step):
            if fault and fault["kind"] == "slow":
                time.sleep(fault["delay"])
            self.wfile.write(body[i:i + step])


class Hub(Base):
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        q = urllib.parse.parse_qs(url.query)
        with STATE.lock:
            STATE.hub_auth.append(self.headers.get("Authorization"))
        if path == "/_ctl/log":
            with STATE.lock:
                body = json.dumps({"cdn_auth": STATE.cdn_auth,
                                   "hub_auth": STATE.hub_auth}).encode()
            return self.send_body(body, {"Content-Type": "application/json"})
        if path == "/_ctl":
            with STATE.lock:
                STATE.faults[q["path"][0]] = {
                    "kind": q["fault"][0],
                    "count": int(q.get("count", ["1"])[0]),
                    "delay": float(q.get("delay", ["0.05"])[0])}
            return self.send_body(b"ok\n", {})
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 6:
            return self.api(parts[2] + "/" + parts[3], parts[4],
                            "/".join(parts[5:]), q)
        if len(parts) >= 5 and parts[2] == "resolve":
            return self.resolve(parts[0] + "/" + parts[1], parts[3],
                                "/".join(parts[4:]))
        self.send_err(404, None, "no such route")

    def repo_or_error(self, repo_id):
        repo = STATE.repos.get(repo_id)
        auth = self.headers.get("Authorization")
        if repo is None or (repo.private and auth != "Bearer " + TOKEN):
            self.send_err(401, "RepoNotFound", "Repository not found")
            return None
        if repo.gated:
            self.send_err(403, "GatedRepo", "Access to model %s is "
                          "restricted. You must have access to it and be "
                          "authenticated to access it." % repo_id)
            return None
        return repo

    def commit_of(self, repo, rev):
        if rev in ("main", "v1", repo.commit):
            return repo.commit
        self.send_err(404, "RevisionNotFound", "Invalid rev id: " + rev)
        return None

    def api(self, repo_id, kind, rest, q):
        repo = self.repo_or_error(repo_id)
        if not repo:
            return
        if kind == "revision":
            commit = self.commit_of(repo, rest)
            if commit:
                body = json.dumps({"id": repo_id, "sha": commit, "siblings":
                                   [{"rfilename": p} for p in repo.files]})
                self.send_body(body.encode(),
                               {"Content-Type": "application/json"})
            return
        if kind == "tree":
            commit = self.commit_of(repo, rest)
            if not commit:
                return
            entries = repo.tree()
            cursor = int(q.get("cursor", ["0"])[0])
            page = entries[cursor:cursor + 3]
            headers = {"Content-Type": "application/json"}
            if cursor + 3 < len(entries):
                headers["Link"] = ('<http://127.0.0.1:%d/api/models/%s/tree/'
                                   '%s?recursive=true&cursor=%d>; rel="next"'
                                   % (self.server.server_port, repo_id,
                                      commit, cursor + 3))
            return self.send_body(json.dumps(page).encode(), headers)
        self.send_err(404, None, "no such route")

    def resolve(self, repo_id, rev, fname):
        repo = self.repo_or_error(repo_id)
        if not repo:
            return
        commit = self.commit_of(repo, rev)
        if not commit:
            return
        if fname not in repo.files:
            return self.send_err(404, "EntryNotFound", "Entry not found",
                                 {"X-Repo-Commit": commit})
        data = repo.files[fname]
        if repo.lfs(fname):
            sha = hashlib.sha256(data).hexdigest()
            loc = ("http://127.0.0.1:%d/blob/%s?path=%s&sig=signed"
                   % (STATE.cdn_port, sha, urllib.parse.quote(fname)))
            self.send_response(302)
            self.send_header("Location", loc)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("X-Linked-Etag", '"%s"' % sha)
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("ETag", '"%s"' % git_sha1(data))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_body(data, {"X-Repo-Commit": commit,
                              "ETag": '"%s"' % git_sha1(data)}, fname)


class Cdn(Base):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        with STATE.lock:
            STATE.cdn_auth.append(self.headers.get("Authorization"))
        sha = url.path.rsplit("/", 1)[-1]
        fname = q.get("path", [""])[0]
        for repo in STATE.repos.values():
            data = repo.files.get(fname)
            if data is not None and hashlib.sha256(data).hexdigest() == sha:
                break
        else:
            return self.send_err(404, None, "no such blob")
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= len(data):
                return self.send_err(416, None, "range not satisfiable")
            return self.send_body(data, {
                "Content-Range": "bytes %d-%d/%d" % (start, len(data) - 1,
                                                      len(data))},
                fname, 206, start)
        self.send_body(data, {"Accept-Ranges": "bytes"}, fname)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--serve", action="append", default=[],
                    metavar="ORG/NAME=DIR")
    a = ap.parse_args()
    STATE.repos["acme/tiny"] = Repo(fixture_tiny())
    STATE.repos["acme/private"] = Repo(fixture_tiny(), private=True)
    STATE.repos["acme/gated"] = Repo(fixture_tiny(), gated=True)
    for bad in ("../escape.txt", "/etc/evil", "a/../../b", "ctl\x01name",
                "back\\slash"):
        STATE.repos["evil/t%d" % len(STATE.repos)] = Repo(
            {"config.json": b"{}"}, bad_names=(bad,))
    for spec in a.serve:
        name, path = spec.split("=", 1)
        STATE.repos[name] = Repo(folder_files(path))
    hub = Server(("127.0.0.1", 0), Hub)
    cdn = Server(("127.0.0.1", 0), Cdn)
    STATE.cdn_port = cdn.server_port
    for s in (hub, cdn):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d\n" % (hub.server_port, cdn.server_port))
        for name in sorted(STATE.repos):
            f.write("%s %s\n" % (name, STATE.repos[name].commit))
    os.replace(tmp, a.port_file)
    time.sleep(a.timeout)
    sys.exit(0)


if __name__ == "__main__":
    main()
