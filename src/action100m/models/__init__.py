"""Every model behind a small interface (``setup()`` once, ``__call__(batch)``): Stage
1 embedders, Stage 2 captioners, Stage 3 chat clients and prompts, and what they
share (the base class, work counters, endpoint faults).
"""
