"""ttscale: test-time compute scaling for language models, under a budget, with honest accounting.

The public API is re-exported here; heavy backends (llama.cpp, HTTP, Hugging Face) are imported lazily.
"""

from __future__ import annotations

from .backends.base import Capabilities, Generator, ModelInfo
from .compute import Budget, Ledger, Meter, reasoning_phase
from .errors import (
    BudgetExhausted,
    CapabilityError,
    ChecksumMismatch,
    ConfigError,
    EngineClosed,
    GenerationError,
    ModelStoreError,
    PromptTooLong,
    TTScaleError,
    UnknownNameError,
)
from .solve import solve
from .strategies import build_strategy
from .types import (
    Candidate,
    Completion,
    Message,
    ModelUsage,
    Problem,
    Prompt,
    Result,
    SamplingParams,
    TokenLogprob,
    TraceEvent,
    Usage,
)

__version__ = "0.1.0"

__all__ = [
    "Budget",
    "BudgetExhausted",
    "Candidate",
    "Capabilities",
    "CapabilityError",
    "ChecksumMismatch",
    "Completion",
    "ConfigError",
    "EngineClosed",
    "GenerationError",
    "Generator",
    "Ledger",
    "Message",
    "Meter",
    "ModelInfo",
    "ModelStoreError",
    "ModelUsage",
    "Problem",
    "Prompt",
    "PromptTooLong",
    "Result",
    "SamplingParams",
    "TTScaleError",
    "TokenLogprob",
    "TraceEvent",
    "UnknownNameError",
    "Usage",
    "__version__",
    "build_strategy",
    "reasoning_phase",
    "solve",
]
