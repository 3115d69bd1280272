"""The three unnormalized variants compared in the diagonal-network figures.

Shared so that every DLN figure builds ERM, n-SAM and 1-SAM the same way;
their labels and colours come from :mod:`samtheory.style`, like every figure's.
Conventions: [rho-sam] (USAM: ρ is an ascent step), [m].
"""

from samtheory import sam
from samtheory.style import VARIANT_COLORS, VARIANT_LABELS

VARIANTS = ("erm", "n_sam", "one_sam")
LABELS = {name: VARIANT_LABELS[name] for name in VARIANTS}
COLORS = {name: VARIANT_COLORS[name] for name in VARIANTS}


def unnormalized_variant(name: str, rho):
    """``ERM()``, n-SAM ``SAM(rho, normalize=False)`` or 1-SAM ``SAM(rho, m=1, normalize=False)``."""
    if name == "erm":
        return sam.ERM()
    if name not in VARIANTS:
        raise ValueError(f"name must be one of {VARIANTS}, got {name!r}")
    return sam.SAM(rho, m=None if name == "n_sam" else 1, normalize=False)
