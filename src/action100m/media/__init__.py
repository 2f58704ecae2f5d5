"""Reading the inputs: video probing and frame sampling, metadata sidecars and
transcripts, decoding ahead of the model.
"""
