"""The abs chapter: model.py (the mathematics), profile.py, experiments.py (steps), claims.py
(verdicts), attacks.py (the paper's attacks in the one registry) and figures.py (tables, plots)."""
