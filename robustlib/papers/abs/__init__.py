"""The abs chapter: model.py (the mathematics), profile.py, experiments.py (steps) and claims.py (verdicts)."""
