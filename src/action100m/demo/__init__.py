"""Fixtures of the offline demo and the tests: tiny models built from the real
transformers classes, footage with known cuts. Not used by a run on real models.
"""
