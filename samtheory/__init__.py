"""samtheory: Sharpness-Aware Minimization theory that runs, checks and draws.

Importing this package changes no global JAX setting, and does not even
import JAX: :func:`enable_float64` is loaded on first use, so that the
``samtheory`` command answers ``--help`` and ``figures --list`` without
paying JAX's import time (issue 15). Theory code runs in float64 once the
entry point calls :func:`enable_float64` (see ``docs/conventions.md``,
[float]).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["enable_float64", "__version__"]


def __getattr__(name: str) -> Any:
    # PEP 562: `samtheory.enable_float64` and `from samtheory import
    # enable_float64` import JAX only when they are asked for.
    if name == "enable_float64":
        from samtheory._precision import enable_float64

        return enable_float64
    raise AttributeError(f"module 'samtheory' has no attribute {name!r}")
