"""ungrok: which learned rules survive language-model pretraining, and why."""
__version__ = "0.1.0"
