"""Artifact bundles (pack / fetch-artifacts) against a loopback HTTP server, and the tracked tree's size."""

from __future__ import annotations

import functools
import http.server
import io
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest
import torch

from robustlib import bundle, cli, paths, store

MAX_TRACKED_MIB = 48  # DESIGN.md "Artifacts": the GPU machines accept a working tree of 64 MiB with ../shared


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def serve(tmp_path):
    """``serve(folder) -> URL``: a static HTTP server on 127.0.0.1 (free port) in a thread; stopped at
    teardown, and after 60 s in any case so a hung test cannot leave it running."""
    servers: list[tuple[http.server.ThreadingHTTPServer, threading.Timer]] = []

    def start(folder: Path) -> str:  # the URL of ``folder``, served as the site's root
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        stop = threading.Timer(60, srv.shutdown)
        stop.daemon = True
        stop.start()
        servers.append((srv, stop))
        return f"http://127.0.0.1:{srv.server_address[1]}"

    yield start
    for srv, stop in servers:
        stop.cancel()
        srv.shutdown()
        srv.server_close()


def _fill(store_dir: Path) -> None:
    """Three results in two notebooks at the paper profile: tensors (safetensors + JSON) and a JSON."""
    kw = dict(profile="paper", seed=0)
    store.save("weights", {"a": 1}, {"state": {"w": torch.arange(600.0)}}, notebook="nb", **kw)
    store.save("adv", {"a": 2}, {"x": torch.ones(5, 7)}, notebook="nb", **kw)
    store.save("metrics", {"a": 3}, {"acc": 0.9}, notebook="other", **kw)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def packed(tmp_store, tmp_path):
    """A good bundle in ``tmp_path/www/good`` and the files it holds; the store is emptied afterwards."""
    _fill(tmp_store)
    before = {k: v for k, v in _files(tmp_store).items() if k.startswith("paper/")}
    out = bundle.pack("paper", tmp_path / "www" / "good")
    shutil.rmtree(tmp_store)
    return out, before


def _tampered(good: Path, name: str, *, members=None, sums=None) -> Path:
    """A copy of the bundle ``good`` whose archive members and/or SHA256SUMS lines are edited."""
    out = good.parent / name
    out.mkdir()
    with tarfile.open(good / bundle.ARCHIVE) as tar:
        content = {m.name: tar.extractfile(m).read() for m in tar}
    content = members(content) if members else content
    with tarfile.open(out / bundle.ARCHIVE, "w") as tar:
        for rel, data in content.items():
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    lines = (good / bundle.SUMS).read_text().splitlines(keepends=True)
    (out / bundle.SUMS).write_text("".join(sums(lines) if sums else lines))
    return out


def _last(content: dict[str, bytes]) -> str:
    return sorted(content)[-1]  # the bad file sorts last: good files before it must not land either


def _corrupt(c):
    k = _last(c)
    return {**c, k: c[k][:-1] + bytes([c[k][-1] ^ 1])}


def _truncate(c):
    k = _last(c)
    return {**c, k: c[k][:-10]}


def _extra(c):
    return {**c, "paper/nb/unknown.json": b"{}"}


def _escape_member(c):
    return {**c, "paper/../../escape.json": b"{}"}


def _escape_line(lines):
    return [*lines, f"{'0' * 64}  2  paper/../../escape.json\n"]


def _absolute_line(lines):
    return [*lines, f"{'0' * 64}  2  /tmp/escape.json\n"]


def _missing(c):
    return dict(sorted(c.items())[:-1])


LAST = "<the last file>"
BAD = {  # name -> (edit of the archive, edit of SHA256SUMS, what the error says, the file it names)
    "corrupt": (_corrupt, None, "sha256", LAST),
    "truncated": (_truncate, None, "bytes", LAST),
    "unknown": (_extra, None, "not listed", "paper/nb/unknown.json"),
    "escape-member": (_escape_member, None, "not a path inside", "paper/../../escape.json"),
    "escape-line": (_escape_member, _escape_line, "not a path inside", "paper/../../escape.json"),
    "absolute-line": (None, _absolute_line, "not a path inside", "/tmp/escape.json"),
    "missing": (_missing, None, "missing from", LAST),
}


def test_good_bundle_lands_over_http_and_verifies(packed, tmp_store, serve):
    good, before = packed
    assert sorted(p.name for p in good.iterdir()) == [bundle.SUMS, bundle.ARCHIVE]
    sums = bundle.parse_sums((good / bundle.SUMS).read_text())
    assert set(sums) == set(before) and all(sums[k].size == len(v) for k, v in before.items())

    url = serve(good.parent) + "/" + good.name
    got = bundle.fetch_artifacts(url)
    assert sorted(got.written) == sorted(before) and got.unchanged == []
    assert {k: v for k, v in _files(tmp_store).items() if k.startswith("paper/")} == before
    assert store.verify_manifest() == []  # the fetched files are listed in the store's MANIFEST
    assert store.load("weights", {"a": 1}, notebook="nb", profile="paper")["state"]["w"][599] == 599
    again = bundle.fetch_artifacts(url)
    assert again.written == [] and sorted(again.unchanged) == sorted(before)


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_bundle_is_refused_with_nothing_written(packed, tmp_store, serve, case):
    good, _ = packed
    members, sums, message, name = BAD[case]
    bad = _tampered(good, case, members=members, sums=sums)
    with pytest.raises(bundle.BundleError, match=message) as err:
        bundle.fetch_artifacts(serve(bad.parent) + "/" + case)
    assert (sorted(bundle.parse_sums((good / bundle.SUMS).read_text()))[-1] if name == LAST else name) in str(err.value)
    assert not tmp_store.exists() or _files(tmp_store) == {}
    assert not (tmp_store.parent / "escape.json").exists()


def test_archive_cut_short_and_missing_bundle_are_clear_errors(packed, tmp_store, serve):
    good, _ = packed
    cut = good.parent / "cut"
    shutil.copytree(good, cut)
    data = (cut / bundle.ARCHIVE).read_bytes()
    (cut / bundle.ARCHIVE).write_bytes(data[: len(data) // 2])
    with pytest.raises(bundle.BundleError, match="cut short|missing from"):
        bundle.fetch_artifacts(serve(cut.parent) + "/cut")
    with pytest.raises(bundle.BundleError, match="cannot download"):
        bundle.fetch_artifacts(serve(good.parent) + "/nosuch")
    with pytest.raises(bundle.BundleError, match="neither a folder nor"):
        bundle.fetch_artifacts(str(good.parent / "nosuch"))
    assert not tmp_store.exists() or _files(tmp_store) == {}


def test_a_different_local_file_is_kept_unless_replace(packed, tmp_store):
    good, before = packed
    victim = sorted(before)[0]
    (tmp_store / victim).parent.mkdir(parents=True)
    (tmp_store / victim).write_bytes(b"local result")
    with pytest.raises(bundle.BundleError, match="different file"):
        bundle.fetch_artifacts(good)
    assert _files(tmp_store) == {victim: b"local result"}  # refused before anything landed
    got = bundle.fetch_artifacts(good, replace=True)
    assert sorted(got.written) == sorted(before) and (tmp_store / victim).read_bytes() == before[victim]


def test_pack_takes_untracked_files_by_default(tmp_store, tmp_path):
    if shutil.which("git") is None:
        pytest.skip("no git")
    _fill(tmp_store)
    git = ["git", "-C", str(tmp_store), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (committed,) = (tmp_store / "paper" / "other").glob("metrics-*.json")
    subprocess.run([*git, "add", str(committed)], check=True)
    default = bundle.parse_sums((bundle.pack("paper", tmp_path / "b1") / bundle.SUMS).read_text())
    everything = bundle.parse_sums((bundle.pack("paper", tmp_path / "b2", include="all") / bundle.SUMS).read_text())
    rel = committed.relative_to(tmp_store).as_posix()
    assert rel not in default and set(everything) == set(default) | {rel}
    with pytest.raises(ValueError, match="not empty"):
        bundle.pack("paper", tmp_path / "b1")
    with pytest.raises(ValueError, match="nothing to pack"):
        bundle.pack("quick", tmp_path / "b3")


def test_cli_pack_and_fetch_artifacts(tmp_store, tmp_path, capsys):
    _fill(tmp_store)
    before = _files(tmp_store / "paper")
    assert cli.main(["pack", "--profile", "paper", "--out", str(tmp_path / "b")]) == 0
    shutil.rmtree(tmp_store)
    assert cli.main(["fetch-artifacts", str(tmp_path / "b")]) == 0
    assert _files(tmp_store / "paper") == before
    (tmp_path / "b" / bundle.SUMS).write_text("not a manifest\n")
    assert cli.main(["fetch-artifacts", str(tmp_path / "b")]) == 2
    assert "SHA256SUMS line 1" in capsys.readouterr().err


def test_tracked_tree_fits_the_gpu_machines():
    """Paper weights and whole adversarial sets go into bundles, not git (DESIGN.md "Artifacts")."""
    root = paths.root()
    if not (root / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True).stdout
    files = [root / f.decode() for f in out.split(b"\0") if f]
    sizes = {f: f.stat().st_size for f in files if f.is_file()}
    total = sum(sizes.values())
    largest = sorted(sizes, key=sizes.get, reverse=True)[:5]
    assert total <= MAX_TRACKED_MIB * 2**20, (
        f"tracked files total {total / 2**20:.1f} MiB > {MAX_TRACKED_MIB} MiB; largest: "
        + ", ".join(f"{f.relative_to(root)} ({sizes[f] / 2**20:.1f} MiB)" for f in largest)
    )
