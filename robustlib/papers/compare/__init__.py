"""The compare chapter ("The five defences side by side"): every model of the zoo through the one
yardstick. profile.py, experiments.py (one step: gather the papers' stored yardstick results and
write ``compare.json``/``compare.csv``), summary.py (table, ranking, headline), figures.py, and
claims.py (no claims of its own: the papers' claims are judged in their chapters)."""
