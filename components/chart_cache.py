"""A Helm chart archive, fetched once per pinned version and checked against a pinned sha256.

`ensure(pin)` returns the path of the archive in the cache (default
~/.cache/selfheal-lb/charts/<name>-<version>.tgz), downloading it only when it is not there
yet. Every use re-checks the digest, so a corrupted or swapped file in the cache is never used:
it is downloaded again, and a download whose digest differs is discarded. Every failure is a
`ChartUnavailable` whose str() is one line saying what to do.

Plain urllib rather than the `helm pull` of a helm binary: one HTTPS GET of one file, and the
Pulumi program then needs no helm on the user's machine (the provider renders the archive).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

DOWNLOAD_TIMEOUT_SECONDS = 30
MAX_ARCHIVE_BYTES = 20 * 2**20  # a chart is tens of KiB; anything near this is not a chart


@dataclass(frozen=True)
class ChartPin:
    name: str
    version: str
    url: str  # the archive itself, as the chart repository's index.yaml lists it
    sha256: str  # the index's `digest` of that version

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.version}.tgz"


class ChartUnavailable(Exception):
    """The chart cannot be had: str() is one line naming the chart and the cause."""


def default_cache_dir() -> Path:
    base = os.environ.get("SELFHEAL_LB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "selfheal-lb"
    )
    return Path(base) / "charts"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def cached(pin: ChartPin, cache_dir: Path | None = None) -> Path | None:
    """The cached archive if it is there and its digest is the pinned one, else None."""
    path = (cache_dir or default_cache_dir()) / pin.file_name
    if path.is_file() and sha256_of(path) == pin.sha256:
        return path
    return None


Opener = Callable[..., IO[bytes]]


def fetch(
    pin: ChartPin,
    cache_dir: Path | None = None,
    *,
    opener: Opener = urllib.request.urlopen,
    timeout: float = DOWNLOAD_TIMEOUT_SECONDS,
) -> Path:
    """Download the archive into the cache, verify it, and return its path."""
    cache_dir = cache_dir or default_cache_dir()
    what = f"{pin.name} chart {pin.version}"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ChartUnavailable(f"{what}: cannot create the cache {cache_dir}: {exc}") from None
    target = cache_dir / pin.file_name
    fd, tmp_name = tempfile.mkstemp(prefix=f".{pin.file_name}.", dir=cache_dir)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out, opener(pin.url, timeout=timeout) as response:
            for block in iter(lambda: response.read(1 << 16), b""):
                size += len(block)
                if size > MAX_ARCHIVE_BYTES:
                    raise ChartUnavailable(f"{what}: {pin.url} sent more than 20 MiB, not a chart")
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != pin.sha256:
            raise ChartUnavailable(
                f"{what}: the download from {pin.url} has sha256 {digest.hexdigest()}, not the "
                f"pinned {pin.sha256}; it was discarded"
            )
        os.replace(tmp, target)  # atomic: a concurrent reader sees no half-written archive
    except ChartUnavailable:
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ChartUnavailable(
            f"{what} is not in the cache ({cache_dir}) and cannot be downloaded from "
            f"{pin.url}: {' '.join(str(reason).split())}"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def ensure(
    pin: ChartPin,
    cache_dir: Path | None = None,
    *,
    opener: Opener = urllib.request.urlopen,
    timeout: float = DOWNLOAD_TIMEOUT_SECONDS,
) -> Path:
    """The verified archive: from the cache, or downloaded once and cached."""
    return cached(pin, cache_dir) or fetch(pin, cache_dir, opener=opener, timeout=timeout)


def unpacked(pin: ChartPin, cache_dir: Path | None = None, **fetch_kw: object) -> Path:
    """The verified archive unpacked: the chart directory (with Chart.yaml) to hand to
    `helm.v3.LocalChartOpts`, whose documented input is a directory.

    Unpacked afresh from the just-verified archive on every call (a chart is tens of KiB), so
    an edited copy in the cache is never what gets deployed.
    """
    archive = ensure(pin, cache_dir, **fetch_kw)  # type: ignore[arg-type]
    target = archive.parent / f"{pin.name}-{pin.version}"
    scratch = Path(tempfile.mkdtemp(prefix=f".{pin.name}-", dir=archive.parent))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")  # no absolute paths, links out, devices
        chart_dirs = [p for p in scratch.iterdir() if (p / "Chart.yaml").is_file()]
        if len(chart_dirs) != 1:
            raise ChartUnavailable(f"{pin.name} chart {pin.version}: {archive} holds no chart")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(scratch, target)
    except (tarfile.TarError, OSError) as exc:
        raise ChartUnavailable(
            f"{pin.name} chart {pin.version}: cannot unpack {archive}: {exc}"
        ) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target / chart_dirs[0].name
