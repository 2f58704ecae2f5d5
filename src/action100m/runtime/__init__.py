"""Running the stages: the per-video scheduler (local or Ray), output fingerprints,
checks before a run, progress, and MLflow tracking.
"""
