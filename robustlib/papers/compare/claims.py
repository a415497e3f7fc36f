"""The compare chapter judges no claim of its own: each paper's claims are judged in its chapter,
on the same yardstick results this chapter shows side by side. So it has no ``RULES`` rows and
stores no scorecard (``papers.write_scorecard`` returns ``[]`` for it)."""

from __future__ import annotations

RULES: tuple = ()
