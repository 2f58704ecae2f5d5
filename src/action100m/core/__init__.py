"""The core types every stage shares: the segment tree and its release invariants, the
release schema, per-video failures, the typed parameters, the temporal Ward merge
tree.
"""
