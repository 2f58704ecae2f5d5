"""Stage 3: LLM aggregation of the Tree-of-Captions into structured annotations."""
