"""The embedded llama.cpp engine (extra ``llamacpp``): batched multi-sequence decoding with a prefix cache."""

from .generator import LlamaCppGenerator
from .native import ContextConfig

__all__ = ["ContextConfig", "LlamaCppGenerator"]
