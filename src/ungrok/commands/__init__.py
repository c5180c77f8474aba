"""CLI verbs grouped by concern; each module exposes `register(app)` and cli.py calls them all."""
