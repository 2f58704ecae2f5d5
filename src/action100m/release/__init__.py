"""The release file and what is made from it: schema checks, statistics, quality
metrics, the per-video assembly of stages, viewers and the run index, the FiftyOne
export and its dataset card, semantic resampling.
"""
