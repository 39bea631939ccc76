"""finegpt: train a small nanoGPT-style GPT on FineWeb with limited GPU memory.

Rooms: config, data, model, memory, train, sample, widgets, plots, cli.
"""

__version__ = "0.1.0"
