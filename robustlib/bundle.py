"""Artifact bundles: the store's files that do not belong in git (paper weights, whole adversarial sets).

A bundle is a folder of two files::

    SHA256SUMS      one line per artifact: sha256, size in bytes, path relative to data/artifacts/
    artifacts.tar   the artifacts under those paths (uncompressed: weights and float tensors barely compress)

One tar rather than a folder tree, because data archives that publish bundles host flat files, a
GPU run brings back a few files more easily than hundreds, and the tar's member list is what lets
``fetch_artifacts`` reject a file the manifest does not list (over http one cannot list a folder).

``pack`` writes a bundle of one profile's files (by default those git does not track).
``fetch_artifacts`` reads a bundle from a folder or an http(s) URL, stages and verifies every file
(path, size, sha256; nothing unknown, nothing missing) and only then moves each into the store
(temporary file in the destination folder + ``os.replace``), so a bad bundle leaves the store as it was.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from . import paths, store
from .profiles import PROFILE_NAMES

SUMS = "SHA256SUMS"
ARCHIVE = "artifacts.tar"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")  # the store's names; no '..', no hidden files
_MAX_SUMS_BYTES = 16 << 20
_TIMEOUT_S = 60


class BundleError(ValueError):
    """A bundle that cannot be fetched as it is; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Entry:
    sha256: str
    size: int
    path: str  # relative to data/artifacts/, '/'-separated


@dataclass
class Fetched:
    written: list[str] = field(default_factory=list)  # paths relative to data/artifacts/
    unchanged: list[str] = field(default_factory=list)  # already in the store with the same sha256


# --- pack ----------------------------------------------------------------------------------------


def _git_tracked(folder: Path) -> set[Path]:
    """Files under ``folder`` that git tracks (the index); empty outside a git checkout."""
    try:
        out = subprocess.run(["git", "-C", str(folder), "ls-files", "-z"], capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return set()
    if out.returncode != 0:
        return set()
    return {(folder / p.decode()).resolve() for p in out.stdout.split(b"\0") if p}


def bundle_files(profile: str, include: Literal["untracked", "all"] = "untracked") -> list[Path]:
    """The files of ``data/artifacts/<profile>/`` a bundle holds, without temporary (hidden) files."""
    if profile not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILE_NAMES)}")
    if include not in ("untracked", "all"):
        raise ValueError(f"include must be 'untracked' or 'all', got {include!r}")
    root = paths.artifacts_dir()
    folder = root / profile
    if not folder.is_dir():
        return []
    files = [
        p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    if include == "all":
        return files
    tracked = _git_tracked(folder)
    return [p for p in files if p.resolve() not in tracked]


def _add(tar: tarfile.TarFile, path: Path, rel: str) -> Entry:
    """Hash and archive one file from a single open: a file replaced meanwhile cannot give a
    manifest line that disagrees with the archived bytes."""
    with open(path, "rb") as f:
        h = hashlib.sha256()
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
        st = os.fstat(f.fileno())
        f.seek(0)
        info = tarfile.TarInfo(rel)
        info.size, info.mtime, info.mode = st.st_size, int(st.st_mtime), 0o644
        tar.addfile(info, f)
    return Entry(h.hexdigest(), st.st_size, rel)


def pack(profile: str, out_dir: str | Path, *, include: Literal["untracked", "all"] = "untracked") -> Path:
    """Write a bundle of ``profile``'s artifacts into ``out_dir`` (new or empty); return ``out_dir``.

    ``include="untracked"`` (default) takes the files git does not track (what a clone lacks);
    ``"all"`` takes every file of the profile. ``SHA256SUMS`` is written last and marks the
    bundle complete.
    """
    files = bundle_files(profile, include)
    if not files:
        raise ValueError(
            f"nothing to pack: data/artifacts/{profile}/ has no {'' if include == 'all' else 'untracked '}files"
        )
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty; pack writes a new bundle into a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    root = paths.artifacts_dir()
    tmp = out / f".{ARCHIVE}.tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        entries = [_add(tar, p, p.relative_to(root).as_posix()) for p in files]
    os.replace(tmp, out / ARCHIVE)
    text = "# sha256  size  path (relative to data/artifacts/)\n"
    text += "".join(f"{e.sha256}  {e.size}  {e.path}\n" for e in entries)
    (out / f".{SUMS}.tmp").write_text(text)
    os.replace(out / f".{SUMS}.tmp", out / SUMS)
    return out


# --- manifest ------------------------------------------------------------------------------------


def _check_path(rel: str) -> str:
    """A store path: relative, inside a known profile, plain names only (no '..', '/x', '.hidden')."""
    parts = rel.split("/")
    if (
        rel.startswith("/")
        or len(parts) < 2
        or parts[0] not in PROFILE_NAMES
        or not all(_PART.fullmatch(p) for p in parts)
    ):
        raise BundleError(
            f"{rel!r}: not a path inside the artifact store (want <profile>/<notebook>/<file>, "
            "no '..', no absolute or hidden names)"
        )
    return rel


def parse_sums(text: str) -> dict[str, Entry]:
    """The entries of a ``SHA256SUMS`` text by path; every malformed or unsafe line is an error."""
    entries: dict[str, Entry] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split(maxsplit=2)
        if len(fields) != 3 or not _HEX64.fullmatch(fields[0]) or not fields[1].isdigit():
            raise BundleError(f"{SUMS} line {n}: want '<sha256>  <size>  <path>', got {line!r}")
        rel = _check_path(fields[2])
        if rel in entries:
            raise BundleError(f"{rel}: listed twice in {SUMS}")
        entries[rel] = Entry(fields[0], int(fields[1]), rel)
    if not entries:
        raise BundleError(f"{SUMS} lists no files")
    return entries


# --- fetch ---------------------------------------------------------------------------------------


def _is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme in ("http", "https")


def _copy_at_most(src: IO[bytes], dst: IO[bytes], limit: int, what: str) -> None:
    """Copy, refusing more than ``limit`` bytes (a server cannot fill the disk)."""
    n = 0
    for block in iter(lambda: src.read(1 << 20), b""):
        n += len(block)
        if n > limit:
            raise BundleError(f"{what}: larger than the {limit} bytes the manifest allows")
        dst.write(block)


def _obtain(source: str, name: str, staging: Path, limit: int) -> Path:
    """A local path to the bundle's file ``name``: the file itself, or a download into ``staging``."""
    if not _is_url(source):
        path = Path(source) / name
        if not path.is_file():
            raise BundleError(f"{name}: not found in {source}")
        if path.stat().st_size > limit:
            raise BundleError(f"{name}: larger than the {limit} bytes the manifest allows")
        return path
    url = source.rstrip("/") + "/" + name
    dest = staging / name
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp, open(dest, "wb") as f:
            _copy_at_most(resp, f, limit, name)
    except OSError as err:  # URLError and HTTPError are OSErrors
        raise BundleError(f"{name}: cannot download {url}: {err}") from err
    return dest


def _stage(archive: Path, entries: dict[str, Entry], staging: Path) -> None:
    """Extract every listed file into ``staging`` and verify it; any other member is an error."""
    seen: set[str] = set()
    try:
        with tarfile.open(archive, "r:") as tar:
            for m in tar:
                if m.isdir():
                    continue  # folders made by a hand-made tar carry no data
                rel = _check_path(m.name.removeprefix("./"))
                if rel not in entries:
                    raise BundleError(f"{rel}: in {ARCHIVE} but not listed in {SUMS}")
                if rel in seen:
                    raise BundleError(f"{rel}: appears twice in {ARCHIVE}")
                if not m.isreg():
                    raise BundleError(f"{rel}: not a regular file in {ARCHIVE} (links are refused)")
                seen.add(rel)
                _verify_member(tar, m, entries[rel], staging / rel)
    except (tarfile.TarError, EOFError) as err:
        raise BundleError(f"{ARCHIVE}: unreadable or cut short ({err})") from err
    missing = sorted(set(entries) - seen)
    if missing:
        raise BundleError(
            f"{missing[0]}: listed in {SUMS} but missing from {ARCHIVE}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )


def _verify_member(tar: tarfile.TarFile, m: tarfile.TarInfo, want: Entry, dest: Path) -> None:
    if m.size != want.size:
        raise BundleError(f"{want.path}: {m.size} bytes, {SUMS} says {want.size} (truncated or altered)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    src = tar.extractfile(m)
    assert src is not None  # a regular file
    with src, open(dest, "wb") as f:
        for block in iter(lambda: src.read(1 << 20), b""):
            h.update(block)
            f.write(block)
    if h.hexdigest() != want.sha256:
        raise BundleError(
            f"{want.path}: sha256 {h.hexdigest()[:16]}... differs from {SUMS}'s {want.sha256[:16]}... (corrupt)"
        )


def _install(staged: Path, dest: Path) -> None:
    """Copy into a temporary file beside ``dest``, then rename: atomic on one filesystem, and the
    staging folder (system temp) may be on another one."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(staged, tmp)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch_artifacts(source: str | Path, *, replace: bool = False) -> Fetched:
    """Fetch a bundle (a folder or an http(s) URL of one) into ``data/artifacts/``.

    Everything is downloaded and verified before the first file lands; a bad bundle raises
    :class:`BundleError` naming the file. A store file that differs from the bundle's is an error
    unless ``replace=True`` (a fetch should not silently overwrite local results).
    """
    source = str(source)
    if not _is_url(source) and not Path(source).is_dir():
        raise BundleError(f"{source}: neither a folder nor an http(s) URL")
    root = paths.artifacts_dir()
    with tempfile.TemporaryDirectory(prefix="robustlib-fetch-") as tmp:
        staging = Path(tmp)
        entries = parse_sums(_obtain(source, SUMS, staging, _MAX_SUMS_BYTES).read_text())
        limit = sum(e.size + 2048 for e in entries.values()) + (1 << 20)  # data + tar headers, padding
        files = staging / "files"
        _stage(_obtain(source, ARCHIVE, staging, limit), entries, files)
        result = Fetched()
        for rel, e in sorted(entries.items()):
            dest = root / rel
            if dest.exists() and paths.sha256(dest) == e.sha256:
                result.unchanged.append(rel)
            elif dest.exists() and not replace:
                raise BundleError(f"{rel}: the store holds a different file (pass replace=True / --replace)")
            else:
                result.written.append(rel)
        for rel in result.written:
            _install(files / rel, root / rel)
    store.update_manifest([root / rel for rel in result.written])  # lists those git would commit
    return result
