"""The model zoo: every trained defence and baseline of the book, ready to attack with any tool.

::

    from robustlib import zoo

    zoo.list()                                    # every entry: name, paper, what it is, profiles
    model = zoo.load("dam-n30", profile="quick")  # eval mode; [0,1] images (N,1,28,28) -> scores (N,10)
    adapter = zoo.adapter("dam-n30")              # + what the yardstick may use (protocol.Adapter)

The API follows RobustBench's ``load_model(model_name, dataset, threat_model)``: a name in, a
plain ``torch.nn.Module`` out. Nothing is trained: a model is rebuilt from the results its chapter
committed (``data/artifacts/<profile>/<paper>/``), in a load-only experiment of that chapter
(``experiment.start(paper, profile, load_only=True)`` and the chapter's ``adapter.load``). Before
anything is read, every file of that folder that ``data/artifacts/MANIFEST`` lists is checked
against its sha256 (a changed or corrupt file is refused by name). The names, and what each
chapter lets an attacker use, are the chapters' ``adapter.py`` (``MODELS``, ``load``,
``adapter``).

Profiles: ``quick`` (the book's default: the papers' models at reduced scale, committed),
``paper`` (the papers' own settings: results committed, weights in bundles fetched with
``python -m robustlib fetch-artifacts``), ``smoke`` (tiny test models, computed locally).
"""

from __future__ import annotations

import builtins
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch

from . import experiment, papers, paths, store
from .data import DataIntegrityError
from .profiles import PROFILE_NAMES

ROLES = ("defence", "control", "baseline")

# What each entry is (the chapters' ``adapter.MODELS`` give the names; these say what they are).
# role: "defence" (a paper's robust model), "control" (the model a paper compares its defence
# with, trained by that chapter), "baseline" (a standard network of the baselines chapter).
ABOUT: dict[str, tuple[str, str]] = {
    "relu-mlp": ("baseline", "784-512-512-512-10 ReLU MLP, standard training"),
    "sigmoid-mlp": ("baseline", "784-512-512-512-10 sigmoid MLP, standard training"),
    "lenet": ("baseline", "Caffe LeNet (two conv layers, two fully connected), standard training"),
    "nearest-neighbour": ("baseline", "nearest training image in L2 (class score: minus the distance)"),
    "rbfi": ("defence", "network of infinity-norm RBF units, trained with pseudogradients"),
    "rbfi-relu": ("control", "the RBFI chapter's ReLU network of the same size"),
    "dam-n2": ("control", "dense associative memory with power n = 2 (the paper's low-power model)"),
    "dam-n30": ("defence", "dense associative memory with rectified-polynomial power n = 30"),
    "abs": ("defence", "analysis by synthesis: one VAE per class, scores from test-time inference"),
    "binary-abs": ("defence", "ABS on binarised inputs (pixels thresholded at 0.5)"),
    "bang-r0": ("control", "LeNet with regular training (BANG's reference R0)"),
    "bang-b1": ("defence", "LeNet trained with BANG's per-sample gradient balancing (B1)"),
    "mfbm": ("defence", "mean-field Boltzmann machine unrolled into a frozen conv input layer"),
    "mfbm-rbm": ("control", "the same network with an RBM-trained input layer (no hidden couplings)"),
    "mfbm-lenet": ("control", "the MFBM chapter's LeNet"),
}


@dataclass(frozen=True)
class Entry:
    """One model of the zoo."""

    name: str  # what ``load`` takes, e.g. "dam-n30"
    paper: str  # the chapter that trains it (``robustlib/papers/<paper>/``)
    about: str  # what it is, in one line
    role: str  # "defence", "control" or "baseline" (``ROLES``)
    profiles: tuple[str, ...]  # the profiles whose weights are in the store here


def _has_adapter(paper: str) -> bool:
    return importlib.util.find_spec(f"{papers.__name__}.{paper}.adapter") is not None


def _adapter_module(paper: str):
    return papers.get(paper, "adapter")


def models() -> dict[str, str]:
    """``{name: paper}`` for every entry, in the book's chapter order (the chapters' ``MODELS``;
    a chapter without ``adapter.py`` contributes none)."""
    out: dict[str, str] = {}
    for paper in papers.NAMES:
        if _has_adapter(paper):
            for name in _adapter_module(paper).MODELS:
                out[name] = paper
    return out


def _paper_of(name: str) -> str:
    found = models()
    if name not in found:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(found) or '(no chapter has an adapter yet)'}")
    return found[name]


def _check_profile(profile: str) -> None:
    if profile not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILE_NAMES)}")


# --- integrity ---------------------------------------------------------------------------------

_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256 already checked


def verify(paper: str, profile: str) -> int:
    """Check every file of ``data/artifacts/<profile>/<paper>/`` that MANIFEST lists against its
    sha256; return how many were checked. A mismatch raises ``DataIntegrityError`` naming the file.
    (Files MANIFEST does not list, e.g. ``smoke`` results or fetched ``paper`` weights, which
    ``fetch-artifacts`` checked on arrival, are not checked here.)"""
    _check_profile(profile)
    papers.get(paper, "profile")  # a bad paper name: ValueError naming the valid ones
    root = paths.artifacts_dir()
    prefix = f"{profile}/{paper}/"
    checked = 0
    for rel, digest in store.read_manifest().items():
        if not rel.startswith(prefix):
            continue
        path = root / rel
        if not path.exists():  # listed but absent: loading reports it if the model needs it
            continue
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if _VERIFIED.get(key) != digest:
            if paths.sha256(path) != digest:
                raise DataIntegrityError(
                    f"{path} does not match its sha256 in {root / store.MANIFEST}: the file is corrupt or was "
                    f"changed. Restore it (from git or `python -m robustlib fetch-artifacts SOURCE`) or recompute "
                    f"it with `python -m robustlib compute {paper} --profile {profile}`"
                )
            _VERIFIED[key] = digest
        checked += 1
    return checked


# --- loading -----------------------------------------------------------------------------------


def _open(name: str, profile: str, device: str) -> tuple[experiment.Experiment, torch.nn.Module]:
    """The load-only experiment of the entry's chapter and the model, checked and in eval mode."""
    paper = _paper_of(name)
    _check_profile(profile)
    verify(paper, profile)
    exp = experiment.start(paper, profile, device=device, load_only=True)
    try:
        model = _adapter_module(paper).load(exp, name)
    except experiment.MissingResult as err:
        have = [p for p in PROFILE_NAMES if p != profile and _available(name, p)]
        raise ValueError(
            f"no weights for {name!r} at profile {profile!r} in {paths.artifacts_dir() / profile / paper}; "
            f"profiles with weights here: {', '.join(have) or 'none'}. Fetch a bundle with "
            f"`python -m robustlib fetch-artifacts SOURCE` or compute them with "
            f"`python -m robustlib compute {paper} --profile {profile}` ({err})"
        ) from err
    return exp, model.eval()


def load(name: str, profile: str = "quick", device: str = "cpu") -> torch.nn.Module:
    """The trained model ``name`` in eval mode on ``device``: images (N, 1, 28, 28) in [0, 1] ->
    class scores (N, 10). ``ValueError`` names the valid choices for an unknown name or profile,
    and says how to get the weights for a profile whose weights are not in the store."""
    return _open(name, profile, device)[1]


def adapter(name: str, profile: str = "quick", device: str = "cpu"):
    """The model and what the yardstick may use against it (``protocol.Adapter``: a surrogate for
    gradients, binarisation, the paper's own attacks), as its chapter defines them."""
    exp, model = _open(name, profile, device)
    return _adapter_module(exp.paper).adapter(exp, name, model)


_AVAILABLE: dict[tuple[str, str, str], bool] = {}


def _available(name: str, profile: str) -> bool:
    """Whether the store holds what ``load(name, profile)`` needs (tried once per process)."""
    key = (str(paths.artifacts_dir()), name, profile)
    if key not in _AVAILABLE:
        paper = _paper_of(name)
        exp = experiment.start(paper, profile, device="cpu", load_only=True)
        try:
            _adapter_module(paper).load(exp, name)
            _AVAILABLE[key] = True
        except (experiment.MissingResult, ValueError):  # not stored, or the profile has no such model
            _AVAILABLE[key] = False
    return _AVAILABLE[key]


def entry(name: str) -> Entry:
    """The zoo entry ``name`` (``ValueError`` names the valid ones)."""
    paper = _paper_of(name)
    role, about = ABOUT.get(name, ("control", f"a model of the {paper} chapter"))
    return Entry(name, paper, about, role, tuple(p for p in PROFILE_NAMES if _available(name, p)))


def list(profile: str | None = None) -> builtins.list[Entry]:  # named like RobustBench's list
    """Every entry of the zoo in the book's chapter order; with ``profile``, only those whose
    weights are in the store at that profile. (Finding the profiles loads each model once.)"""
    if profile is not None:
        _check_profile(profile)
    entries = [entry(name) for name in models()]
    return [e for e in entries if profile is None or profile in e.profiles]


def artifact_folder(name: str, profile: str = "quick") -> Path:
    """Where the entry's committed results live (what ``verify`` checks)."""
    _check_profile(profile)
    return store.artifact_dir(_paper_of(name), profile)
