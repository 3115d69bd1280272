"""The figure pipeline: registry → config → cache → run → check → plot → save → manifest.

Each paper figure lives in one module ``experiments/<name>.py`` listed in
``experiments.FIGURE_MODULES``. The library never imports the experiments:
the caller (the ``samtheory`` command, :mod:`samtheory.cli`) hands the
pipeline a :class:`FigureRegistry` naming the package that holds them. The
pipeline only talks to a figure module through the protocol below (also in
``docs/pipeline.md``).

Figure module protocol
----------------------
Required:

``NAME: str``
    File stem of the outputs, ``<out>/<NAME>.png`` and ``.pdf``, and the
    figure's key in the manifest. For a registered module it must equal the
    module's name in the registry (so the CLI name, the file and the manifest
    entry are one name). Letters, digits, ``_``, ``-`` and ``.`` only.
``TITLE: str``
    One line saying what the figure shows.
``CAPTION: str``
    One sentence saying what to see in the figure (the point a reader should
    take from the slide), e.g. "1-SAM's kink count stays at 5 whatever the
    counting tolerance; ERM's moves between 5 and 10." Shown under the
    figure in the README and stored in the manifest. One line, ending with
    a full stop.
``Config``
    A ``@dataclass(frozen=True)`` whose fields are plain JSON values:
    numbers, strings, bools, ``None``, tuples/lists of those, nested frozen
    dataclasses. ``±inf`` is allowed (recorded as ``"inf"``), NaN is not.
``config(quick: bool) -> Config``
    The full configuration, or with ``quick=True`` one that runs in seconds
    (smoke tests, demos). Both must be deterministic.
``run(config: Config, progress: Callable[[float], None] | None) -> dict``
    The computation, a pure function of ``config`` ([rng]). Returns a flat
    dict mapping ``str`` keys (not starting with ``__``) to NumPy/JAX arrays
    or ``float``/``int``/``bool``/``str`` scalars. If ``progress`` is given,
    call it now and then with the fraction done in ``[0, 1]``.
``plot(result: dict, config: Config) -> matplotlib.figure.Figure``
    Draws the result. It receives exactly what a cache hit would give:
    NumPy arrays and Python scalars. Prefer ``matplotlib.figure.Figure()``
    over ``pyplot`` (no global state); a pyplot figure is closed after saving.
    It may return a dict ``{suffix: Figure}`` instead: the ``""`` entry is
    the main figure (the slide that makes the point), each other one is
    saved as ``<NAME>_<suffix>.png``/``.pdf`` (supporting detail).

Optional:

``CODE_VERSION: int`` (default 0)
    Part of the cache key. Bump it whenever ``run`` would compute something
    different for the same config because the *library* changed; otherwise
    stale cached results are reused. A change of the module's own computing
    code is seen by the source digest, but bump it then too: the manifest's
    key (what ``scripts/check_regeneration.py`` compares) ignores the source.
``ALLOW_NONFINITE: frozenset[str]``
    Result keys in which non-finite floats are legitimate (for example a
    diverged run that the plot masks and marks, [record]). In every other
    float or complex entry a NaN or ±inf raises :class:`NonFiniteResultError`
    naming the figure and the key, before anything is cached or drawn.
``summary(result: dict, config: Config) -> dict[str, float]``
    Headline numbers, recorded in the manifest. NaN is refused here too.

What the pipeline does with it
------------------------------
The cache key is the sha256 of the canonical JSON of ``{NAME, CODE_VERSION,
config}`` (:func:`samtheory.results.cache_key`); a cached result is reused
only if, besides, the module's computing code is unchanged
(:func:`samtheory.source_digest.figure_source_digest`: the module minus its
``plot``/``summary``/``TITLE``/``CAPTION``, plus the experiment helpers it
imports; not the library). A result is cached as one ``.npz`` in
``cache_dir`` with its config, key, source digest and provenance inside; a
hit skips ``run``, ``force=True`` re-runs. The figure is written as PNG (150 dpi)
and PDF with the date and software stamps removed, so unchanged figures
regenerate byte for byte, and ``<out>/manifest.json`` gets (only) this
figure's entry replaced. All writes are atomic (:mod:`samtheory.results`).

Quick figures go to ``paper_figs/quick/`` by default, so a smoke run never
overwrites the full-configuration figures in ``paper_figs/``.

Float policy: this module does not change it; the CLI calls
:func:`samtheory.enable_float64` before anything else ([float]).

Conventions: no mathematical convention applies here; the pipeline enforces
[record] (no silent non-finite value) and the CLI sets [float].
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import re
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from samtheory.figure_registry import (
    FigureRegistry,
    UnknownFigureError,
    registered_figures,
    resolve_figure_names,
)
from samtheory.results import (
    ResultValue,
    atomic_update_json,
    atomic_write_bytes,
    cache_key,
    config_to_dict,
    load_result_npz,
    normalize_result,
    provenance,
    read_json_object,
    save_result_npz,
    to_jsonable,
)
from samtheory.source_digest import figure_source_digest
from samtheory.style import SLIDE_RC

__all__ = [
    "DEFAULT_OUT_DIR",
    "DEFAULT_CACHE_DIR",
    "QUICK_SUBDIR",
    "MANIFEST_NAME",
    "PNG_DPI",
    "FigureModule",
    "FigureRecord",
    "FiguresOutcome",
    "FigureUnavailable",
    "UnknownFigureError",
    "FigureProtocolError",
    "NonFiniteResultError",
    "FigureRegistry",
    "UnwritableDirectoryError",
    "registered_figures",
    "load_figure_module",
    "resolve_figure_names",
    "check_figure_module",
    "figure_cache_key",
    "cache_file_path",
    "check_finite_result",
    "default_out_dir",
    "save_figure",
    "update_manifest",
    "run_figure",
    "run_figures",
    "persistent_compilation_cache",
    "COMPILATION_CACHE_SUBDIR",
]

#: Where full-configuration figures go, relative to the working directory.
DEFAULT_OUT_DIR = Path("paper_figs")
#: Subdirectory of :data:`DEFAULT_OUT_DIR` for quick-configuration figures.
QUICK_SUBDIR = "quick"
#: Where cached results go, relative to the working directory (git-ignored).
DEFAULT_CACHE_DIR = Path(".cache") / "samtheory"
#: File name of the manifest inside the output directory.
MANIFEST_NAME = "manifest.json"
#: Resolution of the PNG outputs.
PNG_DPI = 150

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# Number of hex digits of the key used in cache file names; the full key is
# stored inside the file and compared on load.
_KEY_PREFIX = 16
# Hex digits of the figure module's source digest in cache file names
# (samtheory.source_digest); the full digest is compared on load too.
_SOURCE_PREFIX = 12

# Metadata that would otherwise stamp the date or the matplotlib version into
# every output and make regenerated figures differ byte-wise. None = omit.
_PNG_METADATA: dict[str, Any] = {"Software": None}
_PDF_METADATA: dict[str, Any] = {"Creator": None, "Producer": None, "CreationDate": None}


# --------------------------------------------------------------------------
# Protocol, errors, records
# --------------------------------------------------------------------------


@runtime_checkable
class FigureModule(Protocol):
    """Static description of a figure module; see the module docstring."""

    NAME: str
    TITLE: str
    CAPTION: str
    Config: type

    def config(self, quick: bool) -> Any: ...

    def run(self, config: Any, progress: Callable[[float], None] | None) -> dict[str, Any]: ...

    def plot(self, result: dict[str, Any], config: Any) -> Figure: ...


class FigureUnavailable(Exception):
    """Raised by a figure module's ``run`` when its inputs do not exist on this machine.

    For figures drawn from results that another machine produces (the GPU
    runs of ``samtheory resnet``): the pipeline reports the figure as
    skipped, with the message saying how to produce the inputs, instead of
    failing the whole command. Nothing is cached or drawn.
    """


class FigureProtocolError(TypeError):
    """A figure module does not follow the protocol."""


class NonFiniteResultError(ValueError):
    """A result holds NaN or ±inf in a key that is not in ``ALLOW_NONFINITE``."""

    def __init__(self, figure: str, key: str, detail: str):
        self.figure = figure
        self.key = key
        super().__init__(
            f"figure {figure!r}: result key {key!r} {detail}. A NaN must not reach a figure silently: "
            f"fix the computation, or mask the entries, mark them in the plot and list {key!r} in "
            f"ALLOW_NONFINITE (docs/conventions.md, [record])"
        )


class UnwritableDirectoryError(ValueError):
    """The output or cache directory cannot be written; raised before anything is computed."""


@dataclasses.dataclass(frozen=True)
class FigureRecord:
    """What :func:`run_figure` did for one figure; its manifest entry plus paths.

    ``run_s`` is the wall time of the ``run()`` that produced the result (on
    a cache hit, the time it took when it was computed); ``plot_s`` is the
    wall time of this ``plot()``. ``provenance`` describes the computation of
    the result (see :func:`samtheory.results.provenance`).
    """

    name: str
    title: str
    caption: str
    key: str
    code_version: int
    quick: bool
    config: dict[str, Any]
    provenance: dict[str, Any]
    run_s: float | None
    plot_s: float
    cache_hit: bool
    summary: dict[str, Any]
    png: Path
    pdf: Path
    cache_file: Path
    result: Mapping[str, ResultValue] = dataclasses.field(repr=False, compare=False)
    #: :func:`samtheory.source_digest.figure_source_digest` of the module that computed the result.
    source_digest: str | None = None
    #: Further figures of the module (``plot`` returned a dict): suffix → (png, pdf).
    extra_files: Mapping[str, tuple[Path, Path]] = dataclasses.field(default_factory=dict)

    def manifest_entry(self) -> dict[str, Any]:
        """The JSON entry of this figure in ``manifest.json``."""
        return {
            "title": self.title,
            "caption": self.caption,
            "config": self.config,
            "key": self.key,
            "source_digest": self.source_digest,
            "code_version": self.code_version,
            "quick": self.quick,
            "provenance": self.provenance,
            "runtime": {"run_s": self.run_s, "plot_s": self.plot_s},
            "cache_hit": self.cache_hit,
            "summary": self.summary,
            "files": {"png": self.png.name, "pdf": self.pdf.name,
                      **({"extra": {k: {"png": png.name, "pdf": pdf.name} for k, (png, pdf) in self.extra_files.items()}}
                         if self.extra_files else {})},
            "rendered_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }


@dataclasses.dataclass(frozen=True)
class FiguresOutcome:
    """Result of :func:`run_figures`: the figures made, the ones that failed, and the ones skipped.

    ``failures`` maps a figure name to the formatted traceback of its error;
    ``skipped`` maps a figure name to the :class:`FigureUnavailable` message
    of a figure whose inputs are missing here (not a failure).
    """

    records: tuple[FigureRecord, ...]
    failures: Mapping[str, str]
    skipped: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True if every requested figure was made."""
        return not self.failures


# --------------------------------------------------------------------------
# Registry (the class and name resolution live in samtheory.figure_registry,
# which --list uses without importing this module's NumPy and matplotlib)
# --------------------------------------------------------------------------


def check_figure_module(module: Any) -> None:
    """Raise :class:`FigureProtocolError` if ``module`` does not follow the protocol.

    Checks presence and types of the attributes, not what the functions do.
    """
    label = getattr(module, "__name__", repr(module))
    missing = [a for a in ("NAME", "TITLE", "CAPTION", "Config", "config", "run", "plot") if not hasattr(module, a)]
    if missing:
        raise FigureProtocolError(f"figure module {label} lacks {', '.join(missing)}")
    name = module.NAME
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise FigureProtocolError(f"figure module {label}: NAME {name!r} is not a valid file stem")
    if not isinstance(module.TITLE, str):
        raise FigureProtocolError(f"figure module {label}: TITLE must be a str")
    caption = module.CAPTION
    if not (isinstance(caption, str) and caption.strip() and "\n" not in caption and caption.rstrip().endswith(".")):
        raise FigureProtocolError(
            f"figure module {label}: CAPTION must be one non-empty line ending with '.', got {caption!r}"
        )
    if not (dataclasses.is_dataclass(module.Config) and isinstance(module.Config, type)):
        raise FigureProtocolError(f"figure module {label}: Config must be a dataclass")
    if not module.Config.__dataclass_params__.frozen:
        raise FigureProtocolError(f"figure module {label}: Config must be declared @dataclass(frozen=True)")
    for fn in ("config", "run", "plot"):
        if not callable(getattr(module, fn)):
            raise FigureProtocolError(f"figure module {label}: {fn} must be callable")
    version = getattr(module, "CODE_VERSION", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise FigureProtocolError(f"figure module {label}: CODE_VERSION must be an int, got {version!r}")
    allow = getattr(module, "ALLOW_NONFINITE", frozenset())
    if isinstance(allow, str) or not all(isinstance(k, str) for k in allow):
        raise FigureProtocolError(f"figure module {label}: ALLOW_NONFINITE must be a set of result keys")
    if hasattr(module, "summary") and not callable(module.summary):
        raise FigureProtocolError(f"figure module {label}: summary must be callable")


def load_figure_module(name: str, registry: FigureRegistry) -> ModuleType:
    """Import the module of a registered ``name`` from ``registry`` and check its protocol."""
    valid = registered_figures(registry)
    if name not in valid:
        raise UnknownFigureError([name], valid)
    module = registry.module(name)
    check_figure_module(module)
    if module.NAME != name:
        raise FigureProtocolError(
            f"{registry.package}.{name}: NAME is {module.NAME!r}; a registered module's NAME must equal its module name"
        )
    return module


# --------------------------------------------------------------------------
# Steps of the pipeline
# --------------------------------------------------------------------------


#: Subdirectory of the cache directory that holds JAX's persistent compilation cache.
COMPILATION_CACHE_SUBDIR = "jax"


@contextlib.contextmanager
def persistent_compilation_cache(cache_dir: str | Path, figure: str | None = None) -> Iterator[Path | None]:
    """Keep JAX's compiled programs in ``<cache_dir>/jax[/<figure>]`` while the block runs; yield that folder.

    :func:`run_figures` gives every figure its own folder: figures made at
    the same time in several processes (``jobs``) then never write the same
    file (JAX writes cache entries in place, without a lock), and a figure
    finds its programs whichever process makes it next time.

    A warm run (a second process, results recomputed) then loads each
    executable instead of compiling it: most of a quick figure's time is
    XLA compiling. Every program is kept, however small or quick to compile
    (``jax_persistent_cache_min_compile_time_secs = 0``,
    ``jax_persistent_cache_min_entry_size_bytes = -1``): the figures compile
    hundreds of small ones. A loaded executable is the one compiled before,
    so results are bitwise the same.

    Leaves a choice made elsewhere alone: if ``jax_compilation_cache_dir`` is
    already set (``JAX_COMPILATION_CACHE_DIR``, or an enclosing call) or the
    cache is disabled (``jax_enable_compilation_cache = False``), nothing is
    changed and ``None`` (or the folder already in use) is yielded. On exit the three
    settings are restored and JAX's cache object is reset, so the process's
    global JAX state is as before (the library flips no global setting for
    good; only the CLI does, [float]).
    """
    import jax
    from jax.experimental.compilation_cache import compilation_cache as jax_compilation_cache

    if not jax.config.jax_enable_compilation_cache:
        yield None
        return
    if jax.config.jax_compilation_cache_dir is not None:
        yield Path(jax.config.jax_compilation_cache_dir)
        return
    folder = Path(cache_dir) / COMPILATION_CACHE_SUBDIR
    if figure is not None:
        folder = folder / figure
    settings = {
        "jax_compilation_cache_dir": str(folder),
        "jax_persistent_cache_min_compile_time_secs": 0.0,
        "jax_persistent_cache_min_entry_size_bytes": -1,
    }
    before = {name: getattr(jax.config, name) for name in settings}
    for name, value in settings.items():
        jax.config.update(name, value)
    jax_compilation_cache.reset_cache()  # (re)read the folder at the next compile
    try:
        yield folder
    finally:
        for name, value in before.items():
            jax.config.update(name, value)
        jax_compilation_cache.reset_cache()


def default_out_dir(quick: bool) -> Path:
    """``paper_figs/`` for full figures, ``paper_figs/quick/`` for quick ones (relative to the cwd)."""
    return DEFAULT_OUT_DIR / QUICK_SUBDIR if quick else DEFAULT_OUT_DIR


def figure_cache_key(module: Any, config: Any) -> str:
    """The cache key of ``module``'s result for ``config``: ``{NAME, CODE_VERSION, config}`` hashed."""
    return cache_key(module.NAME, getattr(module, "CODE_VERSION", 0), config_to_dict(config))


def check_finite_result(figure: str, result: Mapping[str, Any], allow: Iterable[str] = ()) -> None:
    """Raise :class:`NonFiniteResultError` at the first non-finite float entry outside ``allow``.

    Looks at float and complex arrays and scalars; integer, bool and string
    entries cannot be non-finite. Keys are checked in sorted order, so the
    error names the same key every time.
    """
    allowed = frozenset(allow)
    for key in sorted(result):
        if key in allowed:
            continue
        value = result[key]
        if isinstance(value, float):
            if not math.isfinite(value):
                raise NonFiniteResultError(figure, key, f"is {value}")
            continue
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fc":
            continue
        bad = ~np.isfinite(value)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise NonFiniteResultError(
                figure,
                key,
                f"has {int(bad.sum())} non-finite of {value.size} entries "
                f"(first at index {first}: {value[first] if first else value.item()})",
            )


def _check_summary(figure: str, summary: Any) -> dict[str, Any]:
    if not isinstance(summary, Mapping):
        raise FigureProtocolError(f"figure {figure!r}: summary() must return a dict, got {type(summary).__name__}")
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if not isinstance(key, str):
            raise FigureProtocolError(f"figure {figure!r}: summary key {key!r} is not a str")
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise FigureProtocolError(f"figure {figure!r}: summary[{key!r}] must be a number, got {value!r}")
        if isinstance(value, (float, np.floating)) and math.isnan(value):
            raise NonFiniteResultError(figure, f"summary:{key}", "is NaN")
        out[key] = to_jsonable(value)  # ±inf → "inf"/"-inf"
    return out


def _figure_parts(name: str, drawn: Any) -> dict[str, Figure]:
    """``plot``'s return value as ``{suffix: Figure}``; ``""`` is the main figure (``<NAME>.png``).

    ``plot`` returns one Figure, or a dict of them when the point of a figure
    fits one slide and its supporting detail needs another: the ``""`` entry
    is saved as ``<NAME>.png``/``.pdf``, each other ``suffix`` as
    ``<NAME>_<suffix>.png``/``.pdf``.
    """
    parts = dict(drawn) if isinstance(drawn, Mapping) else {"": drawn}
    if "" not in parts:
        raise FigureProtocolError(f"figure {name!r}: plot() returned a dict without the main figure under key ''")
    for suffix, fig in parts.items():
        if not isinstance(fig, Figure):
            raise FigureProtocolError(f"figure {name!r}: plot() returned {type(fig).__name__}, expected a Figure")
        if suffix and not (isinstance(suffix, str) and _NAME_RE.match(suffix)):
            raise FigureProtocolError(f"figure {name!r}: figure suffix {suffix!r} is not a valid file-name part")
    return parts


def save_figure(fig: Figure, out_dir: str | Path, name: str) -> tuple[Path, Path]:
    """Write ``fig`` as ``<out_dir>/<name>.png`` and ``.pdf`` atomically; return both paths.

    Date and software stamps are left out so that an unchanged figure gives
    identical bytes when regenerated (Agg PNGs and matplotlib PDFs are
    otherwise deterministic).
    """
    out = Path(out_dir)
    paths = out / f"{name}.png", out / f"{name}.pdf"
    for path, fmt, metadata in ((paths[0], "png", _PNG_METADATA), (paths[1], "pdf", _PDF_METADATA)):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=PNG_DPI, bbox_inches="tight", metadata=metadata)
        atomic_write_bytes(path, buffer.getvalue())
    return paths


def update_manifest(path: str | Path, name: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """Set ``manifest[name] = entry`` in the JSON file ``path``, keeping all other entries.

    Read-modify-write under a lock, written atomically; returns the new manifest.
    """
    def put(manifest: dict[str, Any]) -> dict[str, Any]:
        manifest[name] = dict(entry)
        return manifest

    return atomic_update_json(path, put)


def cache_file_path(cache_dir: str | Path, name: str, key: str, source: str | None) -> Path:
    """Where the result of figure ``name`` with config key ``key``, computed by source ``source``, is cached.

    ``<cache_dir>/<name>-<16 hex of key>-<12 hex of source>.npz``; without a
    source digest (a module built in memory) ``<name>-<16 hex of key>.npz``.
    Results of another source version keep their own files, so going back to
    an earlier version of a figure module finds its result again.
    """
    stem = f"{name}-{key[:_KEY_PREFIX]}" + (f"-{source[:_SOURCE_PREFIX]}" if source else "")
    return Path(cache_dir) / f"{stem}.npz"


def _load_cached(path: Path, key: str, source: str | None) -> tuple[dict[str, ResultValue], dict[str, Any]] | None:
    # A missing file is a plain miss. An unreadable one (zero length after a
    # full disk, an older format, garbage) is reported and renamed to
    # ``<file>.unreadable`` (kept for a post-mortem, replacing an older one),
    # and the result is recomputed; the figure is never stuck on it.
    if not path.exists():
        return None
    try:
        result, meta = load_result_npz(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        aside = path.with_name(path.name + ".unreadable")
        os.replace(path, aside)
        warnings.warn(
            f"unreadable cache file {path} ({type(err).__name__}: {err}); set aside as {aside}, recomputing",
            stacklevel=3,
        )
        return None
    if meta.get("key") != key or meta.get("source_digest") != source:
        return None  # a prefix collision: never use another config's or source's result
    return result, meta


def _check_writable_directory(path: Path, what: str) -> None:
    """Raise :class:`UnwritableDirectoryError` if files cannot be created in ``path``.

    Creates nothing: an existing directory is probed with a temporary file
    (removed at once); a missing one is judged by its nearest existing
    ancestor, which must be a directory the process may write into.
    """
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        why = f"{existing} is not a directory"
    elif existing == path:
        try:
            with tempfile.TemporaryFile(dir=path):
                return
        except OSError as err:
            why = f"cannot create a file in it ({err.strerror or err})"
    elif os.access(existing, os.W_OK | os.X_OK):
        return
    else:
        why = f"cannot create it: {existing} is not writable"
    raise UnwritableDirectoryError(f"{what} {path} cannot be written: {why}")


def check_outputs_writable(out_dir: Path, cache_dir: Path) -> None:
    """Fail early, before any computation, if the outputs could not be written.

    Checks that ``out_dir`` and ``cache_dir`` can hold new files and that an
    existing ``<out_dir>/manifest.json`` is a JSON object (it is updated, not
    replaced, at the end of each figure).
    """
    _check_writable_directory(Path(out_dir), "out_dir (--out)")
    _check_writable_directory(Path(cache_dir), "cache_dir (--cache-dir)")
    read_json_object(Path(out_dir) / MANIFEST_NAME)


def _clamped(progress: Callable[[float], None] | None) -> Callable[[float], None] | None:
    if progress is None:
        return None

    def report(fraction: float) -> None:
        progress(min(1.0, max(0.0, float(fraction))))

    return report


def run_figure(
    module: Any,
    *,
    quick: bool = False,
    out_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    force: bool = False,
    progress: Callable[[float], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> FigureRecord:
    """Make one figure: config → cache or ``run`` → finiteness check → summary → plot → PNG/PDF → manifest.

    ``module`` is any object following the figure module protocol (module
    docstring); it need not be registered. ``out_dir`` defaults to
    :func:`default_out_dir` (``paper_figs/quick/`` when ``quick``), and
    ``cache_dir`` to :data:`DEFAULT_CACHE_DIR`. With ``force`` the result is
    recomputed and the cache file replaced. ``progress`` is handed to
    ``run()`` (clamped to ``[0, 1]``); ``log`` receives a line saying what
    happens before ``run()`` starts.

    Before anything is computed, :func:`check_outputs_writable` raises
    :class:`UnwritableDirectoryError` or ``ValueError`` (a corrupt manifest).
    An unreadable cache file is set aside with a warning and recomputed.
    Raises :class:`NonFiniteResultError` (nothing is cached or drawn) or
    :class:`FigureProtocolError`; exceptions of ``run``/``plot`` propagate.
    """
    check_figure_module(module)
    name: str = module.NAME
    out = Path(out_dir) if out_dir is not None else default_out_dir(quick)
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    allow = frozenset(getattr(module, "ALLOW_NONFINITE", frozenset()))
    code_version: int = getattr(module, "CODE_VERSION", 0)

    config = module.config(quick)
    if not isinstance(config, module.Config):
        raise FigureProtocolError(
            f"figure {name!r}: config() returned a {type(config).__name__}, expected {module.Config.__name__}"
        )
    config_dict = config_to_dict(config)
    key = cache_key(name, code_version, config_dict)
    source = figure_source_digest(module)
    cache_file = cache_file_path(cache, name, key, source)
    check_outputs_writable(out, cache)

    cached = None if force else _load_cached(cache_file, key, source)
    if cached is not None:
        result, meta = cached
        run_provenance = meta["provenance"]
        # Checked again on a hit: ALLOW_NONFINITE may have been narrowed since.
        check_finite_result(name, result, allow)
    else:
        if log is not None:
            log(f"{name}: computing; loading data and compiling come first, progress follows")
        start = time.perf_counter()
        raw = module.run(config, _clamped(progress))
        run_s = time.perf_counter() - start
        result = normalize_result(raw)
        check_finite_result(name, result, allow)  # before caching: never cache a bad result
        run_provenance = provenance(run_wall_s=run_s)
        meta = {"name": name, "key": key, "source_digest": source, "code_version": code_version, "config": config_dict}
        save_result_npz(cache_file, result, {**meta, "provenance": run_provenance})

    # Before plotting: a failing summary() must leave the outputs as they were.
    summary = _check_summary(name, module.summary(result, config)) if hasattr(module, "summary") else {}

    start = time.perf_counter()
    # Every figure is drawn in the slide style (samtheory.style.SLIDE_RC); a
    # module's explicit sizes still win over it.
    with matplotlib.rc_context(SLIDE_RC):
        drawn = module.plot(result, config)
    parts = _figure_parts(name, drawn)
    extra: dict[str, tuple[Path, Path]] = {}
    try:
        with matplotlib.rc_context(SLIDE_RC):
            for suffix, fig in parts.items():
                paths = save_figure(fig, out, name if not suffix else f"{name}_{suffix}")
                if suffix:
                    extra[suffix] = paths
                else:
                    png, pdf = paths
    finally:
        # Free pyplot-managed figures; a bare Figure() is garbage collected.
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            for fig in parts.values():
                pyplot.close(fig)
    plot_s = time.perf_counter() - start

    record = FigureRecord(
        name=name,
        title=module.TITLE,
        caption=module.CAPTION,
        key=key,
        code_version=code_version,
        quick=quick,
        config=config_dict,
        provenance=run_provenance,
        run_s=run_provenance.get("run_wall_s"),
        plot_s=plot_s,
        cache_hit=cached is not None,
        summary=summary,
        png=png,
        pdf=pdf,
        extra_files=extra,
        cache_file=cache_file,
        result=result,
        source_digest=source,
    )
    update_manifest(out / MANIFEST_NAME, name, record.manifest_entry())
    return record


class _NestedBar:
    """A progress callback drawing a second tqdm bar, created on first use.

    Lazy so that cache hits (which never call it) show no empty bar.
    """

    _STEPS = 1000

    def __init__(self, name: str):
        self._name = name
        self._bar: tqdm | None = None

    def __call__(self, fraction: float) -> None:
        if self._bar is None:
            self._bar = tqdm(
                total=self._STEPS, desc=f"  {self._name}", position=1, leave=False, file=sys.stderr,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}",
            )
        # update() (not setting .n) so tqdm's refresh throttling applies even
        # if run() reports thousands of times; progress never goes backwards.
        delta = int(fraction * self._STEPS) - self._bar.n
        if delta > 0:
            self._bar.update(delta)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class _PlainProgress:
    """A progress callback for a log file: one line per new tenth reached, each at most once."""

    def __init__(self, name: str):
        self._name = name
        self._shown = 0  # tenths already printed

    def __call__(self, fraction: float) -> None:
        tenths = int(fraction * 10 + 1e-9)
        if tenths > self._shown:
            self._shown = tenths
            print(f"  {self._name}: {10 * tenths}%", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def _done_line(record: FigureRecord) -> str:
    how = "cached" if record.cache_hit else f"ran {record.run_s:.1f}s"
    manifest = record.png.parent / MANIFEST_NAME
    cache = "read" if record.cache_hit else "written"
    return (
        f"{record.name}: {how}, plotted {record.plot_s:.1f}s -> {record.png}, {record.pdf}, {manifest}; "
        f"cache {cache}: {record.cache_file}"
    )


def _make_one(
    name: str,
    *,
    registry: FigureRegistry,
    quick: bool,
    out_dir: str | Path | None,
    cache_dir: Path,
    force: bool,
    compilation_cache: bool,
    progress: Callable[[float], None] | None,
    say: Callable[[str], None] | None,
) -> tuple[str, Any]:
    """Make figure ``name``: ``("made", FigureRecord)``, ``("skipped", why)`` or ``("failed", traceback)``.

    The same in the calling process and in a worker process of
    :func:`run_figures`; the figure's compiled programs are kept in
    ``<cache_dir>/jax/<name>`` (:func:`persistent_compilation_cache`).
    """
    try:
        with persistent_compilation_cache(cache_dir, figure=name) if compilation_cache else contextlib.nullcontext():
            module = load_figure_module(name, registry)
            record = run_figure(
                module, quick=quick, out_dir=out_dir, cache_dir=cache_dir, force=force, progress=progress, log=say
            )
    except FigureUnavailable as why:
        return "skipped", str(why)
    except Exception:  # one broken figure must not stop the others
        return "failed", traceback.format_exc()
    return "made", record


def _expected_run_seconds(out_dir: Path, names: Iterable[str]) -> dict[str, float]:
    """Each figure's last ``run_wall_s`` from the manifest in ``out_dir`` (0 where unknown or unreadable)."""
    try:
        manifest = read_json_object(out_dir / MANIFEST_NAME)
    except (OSError, ValueError):
        manifest = {}
    seconds = {}
    for name in names:
        entry = manifest.get(name)
        value = entry.get("provenance", {}).get("run_wall_s") if isinstance(entry, dict) else None
        seconds[name] = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0.0
    return seconds


def run_figures(
    names: Iterable[str] | None = None,
    *,
    registry: FigureRegistry,
    quick: bool = False,
    out_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    force: bool = False,
    verbose: bool = True,
    compilation_cache: bool = True,
    jobs: int = 1,
) -> FiguresOutcome:
    """Make the figures ``names`` of ``registry`` (all if ``None``/empty), one after the other or ``jobs`` at a time.

    Arguments as in :func:`run_figure`. Unknown names raise
    :class:`UnknownFigureError`, and an unwritable output or cache directory
    or a corrupt manifest raise (:func:`check_outputs_writable`), before
    anything runs. An exception in one figure is recorded in ``failures``
    (and reported on stderr if ``verbose``) and the others still run.

    With ``verbose``, progress goes to stderr: on a terminal a tqdm bar over
    figures and a nested one for the running figure; otherwise (a log file),
    and always with ``jobs > 1``, plain lines, one per tenth done. A line
    says when a figure starts computing, and the done line names every file
    written or read.

    With ``compilation_cache`` (the default, and what ``samtheory figures``
    does), JAX's persistent compilation cache is kept in
    ``<cache_dir>/jax/<figure>`` while each figure runs
    (:func:`persistent_compilation_cache`), so a warm run skips compiling.

    With ``jobs > 1`` the figures are made in ``jobs`` worker processes
    (:mod:`samtheory.figure_workers`), the longest first by the run times in
    the output folder's manifest; each figure is computed exactly as alone
    (same code, config and float policy, so the same numbers), and the
    manifest is updated under its lock. ``records`` keeps the order of
    ``names``.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    selected = resolve_figure_names(names, registry)
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    out = Path(out_dir) if out_dir is not None else default_out_dir(quick)
    check_outputs_writable(out, cache)
    outcomes: dict[str, tuple[str, Any]] = {}
    interactive = verbose and sys.stderr.isatty() and jobs == 1

    def say(line: str) -> None:
        if interactive:
            tqdm.write(line, file=sys.stderr)
        elif verbose:
            print(line, file=sys.stderr, flush=True)

    def report(name: str, outcome: tuple[str, Any]) -> None:
        outcomes[name] = outcome
        kind, value = outcome
        if kind == "made":
            say(_done_line(value))
        elif kind == "skipped":
            say(f"{name}: skipped: {value}")
        else:
            say(f"{name}: FAILED\n{value}")

    common = dict(registry=registry, quick=quick, out_dir=out_dir, cache_dir=cache, force=force,
                  compilation_cache=compilation_cache)
    if jobs > 1 and len(selected) > 1:
        from samtheory import figure_workers

        expected = _expected_run_seconds(out, selected)
        order = sorted(selected, key=lambda n: -expected[n])  # longest first: the last to start is short
        figure_workers.make_in_workers(order, jobs=jobs, verbose=verbose, report=report, say=say, **common)
    else:
        bar = tqdm(selected, desc="figures", unit="fig", file=sys.stderr, disable=not interactive, position=0)
        for index, name in enumerate(bar):
            if interactive:
                bar.set_postfix_str(name)
            else:
                say(f"[{index + 1}/{len(selected)}] {name}")
            nested = (_NestedBar(name) if interactive else _PlainProgress(name)) if verbose else None
            try:
                report(name, _make_one(name, progress=nested, say=say if verbose else None, **common))
            finally:
                if nested is not None:
                    nested.close()
        bar.close()
    records = tuple(outcomes[n][1] for n in selected if outcomes[n][0] == "made")
    failures = {n: outcomes[n][1] for n in selected if outcomes[n][0] == "failed"}
    skipped = {n: outcomes[n][1] for n in selected if outcomes[n][0] == "skipped"}
    return FiguresOutcome(records=records, failures=failures, skipped=skipped)
