"""The three unnormalized variants compared in the diagonal-network figures, and their colours.

Shared so that every DLN figure names and draws ERM, n-SAM and 1-SAM the same way.
Conventions: [rho-sam] (USAM: ρ is an ascent step), [m].
"""

from samtheory import sam

VARIANTS = ("erm", "n_sam", "one_sam")
LABELS = {"erm": "ERM", "n_sam": "n-SAM", "one_sam": "1-SAM"}
COLORS = {"erm": "tab:red", "n_sam": "tab:blue", "one_sam": "tab:green"}


def unnormalized_variant(name: str, rho):
    """``ERM()``, n-SAM ``SAM(rho, normalize=False)`` or 1-SAM ``SAM(rho, m=1, normalize=False)``."""
    if name == "erm":
        return sam.ERM()
    if name not in VARIANTS:
        raise ValueError(f"name must be one of {VARIANTS}, got {name!r}")
    return sam.SAM(rho, m=None if name == "n_sam" else 1, normalize=False)
