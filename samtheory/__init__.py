"""samtheory: Sharpness-Aware Minimization theory that runs, checks and draws.

Importing this package changes no global JAX setting. Theory code runs in
float64 once the entry point calls :func:`enable_float64` (see
``docs/conventions.md``, [float]).
"""

from samtheory._precision import enable_float64

__version__ = "0.1.0"
__all__ = ["enable_float64", "__version__"]
