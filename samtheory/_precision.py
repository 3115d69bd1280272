"""The float policy of docs/conventions.md, [float]."""

import jax


def enable_float64() -> None:
    """Turn on 64-bit floats in JAX for the whole process.

    This is the one global switch the package uses. It is never flipped at
    import time; entry points (tests, CLI, benchmarks, experiments) call it
    explicitly. It must run before any array is created that should be
    float64. Conventions: [float].
    """
    jax.config.update("jax_enable_x64", True)
