"""finegpt: train a small nanoGPT-style GPT on FineWeb with limited GPU memory.

Rooms, lowest first (a room imports only lower ones; docs/architecture.md draws them): errors, files,
config, data, model, tracking, step, memory, train, eval, sample, plots, widgets, quickstart, cli.
"""

__version__ = "0.1.0"
