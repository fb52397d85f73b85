"""kvcalc: KV-cache calculator for LLM serving.

The package is the single source of every number the page, the CLI and the
tests show. The one entry point is :func:`kvcalc.api.compute`.
"""

__version__ = "0.1.0"
