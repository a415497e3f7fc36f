"""robustlib: the thin library behind the robustness companion.

Modules: ``data`` (MNIST), ``profiles`` (smoke/quick/paper), ``store`` (artifacts), ``train``
(the training loop), ``attacks`` and ``metrics`` (evaluation), ``plots`` (figure style),
``models`` (one file per paper + baselines), ``cli`` (``python -m robustlib ...``).
"""

__version__ = "0.1.0"
