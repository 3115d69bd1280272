"""Test-suite set-up: float64 ([float] in docs/conventions.md) and hypothesis profiles.

Profiles (select with ``HYPOTHESIS_PROFILE`` or ``--hypothesis-profile``):

* ``default``: few examples, for the whole suite in minutes on 2 cores.
* ``ci``: the same budget, derandomized so CI is reproducible.
* ``thorough``: many more examples, for a deliberate long check.

Shapes inside the strategies are fixed, so JAX compiles each test's function
once and hypothesis varies only the values.
"""

import os

import samtheory
from hypothesis import HealthCheck, settings

samtheory.enable_float64()

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("default", max_examples=20, **_common)
settings.register_profile("ci", max_examples=20, derandomize=True, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=300, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))
