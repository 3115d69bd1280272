"""JAX's persistent compilation cache under the figures' cache directory (issue 15).

``samtheory.figures.persistent_compilation_cache`` keeps compiled programs in
``<cache_dir>/jax`` while figures run, so a second process loads them instead
of compiling; on exit JAX's global settings are as before. Each test compiles
a few tiny programs (well under a second).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from samtheory import figures

_SETTINGS = (
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
    "jax_persistent_cache_min_entry_size_bytes",
)


@pytest.fixture
def events():
    """The names of the JAX monitoring events recorded during the test."""
    seen: list[str] = []

    def listener(event: str, **kwargs) -> None:
        seen.append(event)

    jax.monitoring.register_event_listener(listener)
    yield seen
    jax.monitoring.unregister_event_listener(listener)


@pytest.fixture
def no_compilation_cache():
    """No persistent cache set for the test, whatever ran before it in this process.

    (The demos set one when a test loads them in-process; the setting is put back after.)
    """
    from jax.experimental.compilation_cache import compilation_cache as jax_compilation_cache

    before = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", None)
    jax_compilation_cache.reset_cache()
    yield
    jax.config.update("jax_compilation_cache_dir", before)
    jax_compilation_cache.reset_cache()


def _program(scale: float):
    # A new function object each call: JAX's in-memory caches miss, so a second
    # call with the same scale goes to the persistent cache.
    return jax.jit(lambda x: jnp.sin(x) * scale + 1.0)


def test_programs_are_kept_under_the_cache_dir_and_settings_restored(tmp_path, events, no_compilation_cache):
    before = {name: getattr(jax.config, name) for name in _SETTINGS}
    x = jnp.arange(5.0)
    with figures.persistent_compilation_cache(tmp_path) as folder:
        assert folder == tmp_path / figures.COMPILATION_CACHE_SUBDIR
        first = np.asarray(_program(3.25)(x))
        assert any(folder.iterdir()), "a tiny program must be cached too (min compile time/size settings)"
        assert "/jax/compilation_cache/cache_hits" not in events
        second = np.asarray(_program(3.25)(x))  # same program, compiled anew: loaded from the folder
        assert "/jax/compilation_cache/cache_hits" in events
    np.testing.assert_array_equal(first, second)  # a loaded executable computes bitwise the same
    assert {name: getattr(jax.config, name) for name in _SETTINGS} == before
    events.clear()
    _program(3.25)(x)  # after the block nothing is read from or written to the folder
    assert "/jax/compilation_cache/cache_hits" not in events


def test_a_cache_dir_set_elsewhere_is_left_alone(tmp_path, no_compilation_cache):
    elsewhere = tmp_path / "elsewhere"
    jax.config.update("jax_compilation_cache_dir", str(elsewhere))
    try:
        with figures.persistent_compilation_cache(tmp_path / "figures") as folder:
            assert folder == elsewhere and jax.config.jax_compilation_cache_dir == str(elsewhere)
    finally:
        jax.config.update("jax_compilation_cache_dir", None)
    assert not (tmp_path / "figures").exists()


def test_run_figures_fills_the_compilation_cache(tmp_path, monkeypatch, no_compilation_cache):
    import dataclasses
    import sys
    import types

    import experiments
    from matplotlib.figure import Figure

    @dataclasses.dataclass(frozen=True)
    class Config:
        scale: float

    module = types.ModuleType("experiments.jitted_fig")
    module.NAME, module.TITLE, module.CAPTION, module.Config = "jitted_fig", "A jitted figure", "What to see.", Config
    module.config = lambda quick: Config(scale=2.5)
    module.run = lambda cfg, progress: {"y": np.asarray(_program(cfg.scale)(jnp.arange(3.0)))}
    module.plot = lambda result, cfg: Figure(figsize=(2, 1.5))
    monkeypatch.setattr(experiments, "FIGURE_MODULES", ("jitted_fig",))
    monkeypatch.setitem(sys.modules, "experiments.jitted_fig", module)

    outcome = figures.run_figures(
        registry=figures.FigureRegistry("experiments"), quick=True, out_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache", verbose=False,
    )
    assert outcome.ok and any((tmp_path / "cache" / figures.COMPILATION_CACHE_SUBDIR).iterdir())
    assert jax.config.jax_compilation_cache_dir is None
