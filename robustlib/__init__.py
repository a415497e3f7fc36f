"""robustlib: the thin library behind the robustness companion.

Modules: ``data`` (MNIST), ``profiles`` (smoke/quick/paper), ``store`` (artifacts), ``train``
(the training loop), ``attacks`` and ``metrics`` (evaluation), ``plots`` (figure style),
``models`` (one file per paper + baselines), ``cli`` (``python -m robustlib ...``).
"""

import os as _os

# OpenMP threads that spin while waiting make every small op 10-20x slower when the 2 cores are
# shared (several notebooks or tests at once); passive waiting costs nothing when they are not.
# Takes effect only if torch is imported after robustlib, as in every notebook.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import warnings as _warnings

# tqdm.auto falls back to text progress bars in a kernel without ipywidgets (which we do not pin:
# widget bars do not survive into the static book); its warning about that would open every page.
_warnings.filterwarnings("ignore", message="IProgress not found")

__version__ = "0.1.0"
