"""Kinks of 2-layer ReLU networks fitted to 1-D data by ERM, n-SAM and 1-SAM (normalized and not).

The talk of Andriushchenko & Flammarion (2022, "Towards Understanding
Sharpness-Aware Minimization") states that "using SAM for 2-layer ReLU
networks on simple 1D regression also leads to a sparsifying effect but in
terms of the ReLU kinks", 1-SAM most of all. This figure measures it.

Setup (every choice is a :class:`Config` field):

* **Data**: :func:`samtheory.models.relu1d.maennel_points`, the data set of
  the reference notebook ``one_layer_relu_nets/1d_nn.ipynb`` of the authors
  (taken from Maennel et al. 2018): 12 equispaced inputs with spacing
  Δ = 0.25 on [−1.305, 1.445] (i.e. ``(−5.5 … 5.5)/4 + 0.07``, inside
  [−1.5, 1.5], span 2.75) and zig-zag labels ``0.345 + (−2, 1.5, 0, 0, 2, 1,
  0, −1, 0, 1, 2, −1)``. This is the "dozen points on [−1.5, 1.5]" of the
  talk; we use it as is rather than a re-spaced copy, so the numbers refer
  to the same data as the notebook.
* **Model**: ``f(x) = Σ_j a_j relu(w_j x + b_j) + c`` of width 100 with
  :func:`~samtheory.models.relu1d.init_relu1d` at scale 1 (``|w_j| = 1``,
  initial kinks ``−b_j/w_j`` i.i.d. N(0, 1), ``a_j ~ N(0, 1/h)``). The
  same initialization (one per seed) is used by every variant and ρ, so the
  comparison is paired.
* **Training**: full-batch GD on the mean squared loss, step η = 0.01 for
  the first 80% of the steps, then linearly to 0. The decay is there for
  normalized SAM: its perturbation keeps length ρ at a minimum, so with a
  constant step it bounces around the minimum instead of fitting (the
  2-cycle of ``sam_quadratic_stability``); all variants get the same
  schedule. With η = 0.01 GD stays off the edge of stability (ηλ_max ≤ 1.2
  at the end of ERM training, where λ_max is largest; summary key
  ``erm_max_sharpness_times_step``), so the ERM baseline is close to
  gradient flow and has no large-step flatness bias of its own.
  1.5·10⁵ steps: ERM's kink count did not change between 1.5·10⁵ and
  4·10⁵ steps in a preliminary run (two seeds); panel (h) shows the counts
  along training.
* **Variants and ρ** ([rho-sam]): normalized ρ is a radius (‖θ₀‖ ≈ 14),
  USAM's ρ an ascent step, so each variant has its own geometric ρ grid.
  The top of each grid is about the largest ρ (in steps of 2) at which the
  runs still (nearly) fit the data in the step budget in a preliminary
  sweep on two seeds; somewhat larger ρ makes training stall at a train
  loss of 0.1–0.3 (or diverge: 1-USAM at ρ = 0.1). Runs that do not reach a
  train loss of :data:`FIT_TRAIN_LOSS` are drawn with hollow markers. The
  *representative* ρ of a variant (fits drawn in (a–e), panels (h), (k)) is
  the largest ρ at which every seed fits (:func:`representative_index`): chosen
  by the train loss, never by the kink count.

**Counting kinks.** A unit contributes the breakpoint ``−b_j/w_j`` with
slope jump ``a_j|w_j|`` (:func:`~samtheory.models.relu1d.kinks`). We count
:func:`~samtheory.models.relu1d.effective_kinks` on the data range
``[x_min, x_max]``, shrunk by ``merge_tol`` at both ends. A unit whose
breakpoint is outside the range is affine or off on the data and adds no
kink there; neither does a breakpoint *at* an end point, which only bends
the extrapolation (training does put clusters of units exactly on the end
points, as on every other data point), and within ``merge_tol`` a
breakpoint is not told apart from the end point. The tolerances are

* ``merge_tol = merge_frac · Δ``: breakpoints closer than this merge into
  one kink (their jumps add). Default 5% of Δ = 0.0125, below the mean gap
  between the ≈ 80 initial breakpoints on the data range (≈ 0.035), so
  scattered units are not chained together, while the tight clusters that
  training forms (units collapsing onto the same breakpoint, Maennel et al.)
  count once.
* ``jump_tol = jump_frac · max_k |J_k|``, relative to the largest merged
  slope jump of the same network: kinks carrying less than 5% of it are
  dropped. The piecewise-linear interpolant of the data has 6 kinks with
  slope jumps of 6 to 20 in absolute value, so 5% of the largest is well
  below any kink the data needs and well above the ≈ 0.15 jumps of stray
  units.

Since both tolerances are choices, the counts are also computed on a grid
of tolerances (panel (k), summary keys ``*_tolerance_min/max``).

For scale: any continuous piecewise-linear interpolant of these data has at
least 5 kinks inside the data range (:func:`interpolant_kink_lower_bound`:
the slopes between consecutive points change sign 5 times), dotted in
(f) and (g).

Conventions: [loss-mean], [loss-sq], [rho-sam], [m], [normalize], [record],
[rng], [float].
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator, ScalarFormatter

from samtheory import sam, style, train
from samtheory.models import relu1d

NAME = "relu_kinks"
TITLE = "2-layer ReLU nets on 1-D data: kinks of the fit for ERM, n-/1-SAM and n-/1-USAM against rho"
CAPTION = "1-SAM's fit has 5 kinks, the fewest any interpolant of these data can have, at every counting tolerance, while ERM's median count moves from 10.5 down to 5 as the tolerance grows."
CODE_VERSION = 4  # 4: the divergence probes (1-USAM at rho = 0.06)

VARIANTS = ("erm", "n_sam", "one_sam", "n_usam", "one_usam")
SAM_VARIANTS = VARIANTS[1:]
# Labels and colours from samtheory.style; this module's "n_usam" is the style's "usam".
_STYLE_KEY = {"erm": "erm", "n_sam": "n_sam", "one_sam": "one_sam", "n_usam": "usam", "one_usam": "one_usam"}
LABELS = {name: style.variant_label(key) for name, key in _STYLE_KEY.items()}
COLORS = {name: style.variant_color(key) for name, key in _STYLE_KEY.items()}
#: Result keys that may be non-finite: a diverging probe run has no final loss (the plot marks it).
ALLOW_NONFINITE = frozenset({"probe_final_train_loss"})
# A run "fits" when its RMS residual √(2L) is ≤ 0.014, under 3% of the 0.5 spacing of the label values.
FIT_TRAIN_LOSS = 1e-4
PARAM_NAMES = ("w", "b", "a", "c")


@dataclasses.dataclass(frozen=True)
class Config:
    width: int = 100
    init_scale: float = 1.0
    learning_rate: float = 0.01
    num_steps: int = 150_000
    decay_fraction: float = 0.2  # the step decays linearly to 0 over this final fraction of the steps
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    # [rho-sam]: radii for the normalized variants, ascent steps for USAM.
    rhos_n_sam: tuple[float, ...] = (0.0125, 0.025, 0.05, 0.1)
    rhos_one_sam: tuple[float, ...] = (0.0125, 0.025, 0.05, 0.1)
    rhos_n_usam: tuple[float, ...] = (0.0075, 0.015, 0.03, 0.06)
    rhos_one_usam: tuple[float, ...] = (0.00375, 0.0075, 0.015, 0.03)
    # Kink tolerances: merge_tol = merge_frac·Δ, jump_tol = jump_frac·max|merged jump|.
    merge_frac: float = 0.05
    jump_frac: float = 0.05
    # Tolerance grid of the sensitivity check; must contain (merge_frac, jump_frac).
    merge_fracs_checked: tuple[float, ...] = (0.02, 0.05, 0.1)
    jump_fracs_checked: tuple[float, ...] = (0.01, 0.05, 0.1)
    num_records: int = 12
    # (variant, ρ) pairs one grid step beyond a variant's grid, run only to record whether and where each seed
    # diverges or stalls: they show why the grid stops there (1-USAM: its grid ends at 0.03, one factor 2
    # below n-USAM's 0.06).
    probes: tuple[tuple[str, float], ...] = (("one_usam", 0.06),)


def config(quick: bool) -> Config:
    if quick:
        return Config(
            num_steps=2_000, seeds=(0, 1), num_records=5,
            rhos_n_sam=(0.05, 0.1), rhos_one_sam=(0.05, 0.1),
            rhos_n_usam=(0.03, 0.06), rhos_one_usam=(0.015, 0.03),
        )
    return Config()


def rhos_of(cfg: Config, name: str) -> tuple[float, ...]:
    """The ρ grid of a variant; ERM has the single dummy ρ = 0 so all results are (seed, ρ, …)."""
    return (0.0,) if name == "erm" else getattr(cfg, f"rhos_{name}")


def _variant(name: str, rho):
    if name == "erm":
        return sam.ERM()
    return sam.SAM(rho, m=1 if name.startswith("one") else None, normalize=not name.endswith("usam"))


# --------------------------------------------------------------------------
# Kink counting.
# --------------------------------------------------------------------------


def data_spacing(x) -> float:
    """Δ, the median gap between sorted inputs (0.25 for the Maennel points)."""
    return float(np.median(np.diff(np.sort(np.asarray(x, dtype=np.float64)))))


def _merged_kinks(params, x, merge_frac: float) -> relu1d.EffectiveKinks:
    """Kinks on ``[x_min + merge_tol, x_max − merge_tol]`` merged within ``merge_tol = merge_frac · Δ``."""
    x = np.asarray(x, dtype=np.float64)
    merge_tol = merge_frac * data_spacing(x)
    interval = (float(x.min()) + merge_tol, float(x.max()) - merge_tol)
    return relu1d.effective_kinks(params, interval=interval, jump_tol=0.0, merge_tol=merge_tol)


def _significant(jump: np.ndarray, jump_frac: float) -> np.ndarray:
    """Mask of the merged jumps above ``jump_frac`` times the largest one (step 3 of ``effective_kinks``)."""
    if jump.size == 0:
        return np.zeros(0, dtype=bool)
    return np.abs(jump) > jump_frac * np.max(np.abs(jump))


def kinks_on_data(params, x, *, merge_frac: float, jump_frac: float) -> relu1d.EffectiveKinks:
    """Effective kinks of ``f`` on the data range, with tolerances relative to Δ and to the jumps.

    ``merge_tol = merge_frac · Δ`` (:func:`data_spacing`); the interval is
    ``[x_min + merge_tol, x_max − merge_tol]``; ``jump_tol = jump_frac ·
    max_k |J_k|`` over the kinks merged with that ``merge_tol`` (so a
    duplicated unit is one kink with the summed jump, both for the threshold
    and for the count). This is :func:`~samtheory.models.relu1d.effective_kinks`
    with that ``jump_tol``. See the module docstring for the reasons and the
    default fractions.

    Conventions: [float].
    """
    merged = _merged_kinks(params, x, merge_frac)
    keep = _significant(merged.jump, jump_frac)
    return relu1d.EffectiveKinks(position=merged.position[keep], jump=merged.jump[keep])


def count_kinks(params, x, *, merge_frac: float, jump_frac: float) -> int:
    """Number of :func:`kinks_on_data`. Conventions: [float]."""
    return int(kinks_on_data(params, x, merge_frac=merge_frac, jump_frac=jump_frac).position.size)


def interpolant_kink_lower_bound(x, y) -> int:
    """A lower bound on the kinks of any continuous piecewise-linear interpolant of ``(x, y)``.

    Between two data intervals whose secant slopes have opposite signs
    (zero slopes skipped), the interpolant has a local extremum strictly
    inside the data range, hence a kink; so the number of sign changes of
    the nonzero secant slopes is a lower bound (5 for the Maennel points).
    """
    order = np.argsort(x)
    x, y = np.asarray(x, dtype=np.float64)[order], np.asarray(y, dtype=np.float64)[order]
    signs = np.sign(np.diff(y) / np.diff(x))
    signs = signs[signs != 0]
    return int(np.sum(signs[1:] != signs[:-1]))


def _count_grid(params_grid: dict, x, merge_fracs, jump_fracs) -> np.ndarray:
    """:func:`count_kinks` of every network of stacked parameters, for every pair of tolerances.

    Returns shape ``(*batch, len(merge_fracs), len(jump_fracs))``. Merging
    (the costly part) is done once per merge tolerance and network.
    """
    batch_shape = np.shape(params_grid["w"])[:-1]
    counts = np.zeros(batch_shape + (len(merge_fracs), len(jump_fracs)), dtype=np.int64)
    for idx in np.ndindex(*batch_shape):
        params = {k: v[idx] for k, v in params_grid.items()}
        for i, merge_frac in enumerate(merge_fracs):
            jump = _merged_kinks(params, x, merge_frac).jump
            for j, jump_frac in enumerate(jump_fracs):
                counts[idx + (i, j)] = np.count_nonzero(_significant(jump, jump_frac))
    return counts


# --------------------------------------------------------------------------
# Training.
# --------------------------------------------------------------------------


def step_schedule(cfg: Config) -> optax.Schedule:
    """η constant, then linearly to 0 over the last ``decay_fraction`` of the steps."""
    decay_steps = max(1, round(cfg.decay_fraction * cfg.num_steps))
    return optax.join_schedules(
        [optax.constant_schedule(cfg.learning_rate), optax.linear_schedule(cfg.learning_rate, 0.0, decay_steps)],
        [cfg.num_steps - decay_steps],
    )


def simulate(cfg: Config, name: str, data: dict, *, check: bool = True) -> train.TrainResult:
    """All (seed, ρ) runs of one variant in one compiled, vmapped call; axes (seed, ρ).

    The recorded "metrics" are the train loss and the parameters themselves,
    so that kinks can be counted along training afterwards (counting is not
    jittable: the number of kinks is data-dependent).
    """
    record = train.log_steps(cfg.num_steps, cfg.num_records)

    def metrics(p):
        return {"train_loss": relu1d.loss_relu1d(p, data), **p}

    def one_run(rho, key):
        params0 = relu1d.init_relu1d(key, cfg.width, cfg.init_scale)
        return train.run(
            relu1d.loss_relu1d, params0, data, variant=_variant(name, rho), num_steps=cfg.num_steps,
            learning_rate=step_schedule(cfg), record_steps=record, metrics_fn=metrics,
        )

    grid = jax.jit(functools.partial(train.sweep, one_run))
    result = grid(jnp.asarray(rhos_of(cfg, name)), jnp.asarray(cfg.seeds))
    return train.check_finite(result, names=(f"{name}: seed index", "rho index")) if check else result


def _sharpness_fn(data: dict, template: dict, iterations: int = 500) -> Callable:
    """λ_max of the train loss's dense Hessian by power iteration, vmapped over (seed, ρ).

    Power iteration rather than LAPACK's ``eigvalsh``: on a busy CPU,
    OpenBLAS threads next to XLA's spinning ones made ``eigvalsh`` of these
    (3h+1) × (3h+1) matrices take seconds each. It converges to the eigenvalue of largest
    magnitude, which is λ_max here: in a check against ``eigvalsh`` on the
    final parameters, the most negative eigenvalue was −0.014 against
    λ_max ≥ 12, and λ₂/λ₁ ≤ 0.94, so 500 iterations leave a Rayleigh
    quotient error below 0.94¹⁰⁰⁰ ≈ 10⁻²⁷ relative.
    """
    _, unravel = ravel_pytree(template)

    def lam_max(params):
        flat, _ = ravel_pytree(params)
        hessian = jax.hessian(lambda v: relu1d.loss_relu1d(unravel(v), data))(flat)
        start = jax.random.normal(jax.random.PRNGKey(0), flat.shape, flat.dtype)

        def step(_, v):
            w = hessian @ v
            return w / jnp.linalg.norm(w)

        v = jax.lax.fori_loop(0, iterations, step, start / jnp.linalg.norm(start))
        return v @ hessian @ v

    return jax.jit(jax.vmap(jax.vmap(lam_max)))


def run(cfg: Config, progress: Callable[[float], None] | None = None) -> dict:
    if cfg.merge_frac not in cfg.merge_fracs_checked or cfg.jump_frac not in cfg.jump_fracs_checked:
        raise ValueError("the checked tolerance grid must contain (merge_frac, jump_frac)")
    primary = (cfg.merge_fracs_checked.index(cfg.merge_frac), cfg.jump_fracs_checked.index(cfg.jump_frac))
    data = relu1d.maennel_points()
    x = np.asarray(data["x"])
    out: dict = {"x": x, "y": np.asarray(data["y"])}
    # Rough relative cost (a SAM run costs 2–4 ERM runs), for the progress bar only.
    weights = {name: (1 if name == "erm" else 3) * len(rhos_of(cfg, name)) for name in VARIANTS}
    done = 0.0
    sharpness = None
    for name in VARIANTS:
        result = simulate(cfg, name, data)
        trajectory = {k: np.asarray(result.metrics[k]) for k in PARAM_NAMES}  # (seed, ρ, record, …)
        final = {k: v[:, :, -1] for k, v in trajectory.items()}
        if sharpness is None:
            sharpness = _sharpness_fn(data, jax.tree.map(lambda v: v[0, 0], result.params))
        out["steps"] = np.asarray(result.steps[0, 0])
        out[f"{name}_rhos"] = np.asarray(rhos_of(cfg, name))
        out[f"{name}_train_loss"] = np.asarray(result.metrics["train_loss"])  # (seed, ρ, record)
        out[f"{name}_sharpness"] = np.asarray(sharpness(result.params))  # λ_max, (seed, ρ), final params
        for k, v in final.items():
            out[f"{name}_{k}"] = v  # (seed, ρ, h) or (seed, ρ)
        tolerances = _count_grid(final, x, cfg.merge_fracs_checked, cfg.jump_fracs_checked)
        out[f"{name}_kinks_tolerances"] = tolerances  # (seed, ρ, merge, jump)
        out[f"{name}_kinks"] = tolerances[..., primary[0], primary[1]]  # (seed, ρ)
        out[f"{name}_kinks_over_steps"] = _count_grid(  # (seed, ρ, record)
            trajectory, x, (cfg.merge_frac,), (cfg.jump_frac,)
        )[..., 0, 0]
        done += weights[name]
        if progress is not None:
            progress(done / sum(weights.values()))
    out.update(_probe(cfg, data))
    return out


def _probe(cfg: Config, data: dict) -> dict:
    """The :attr:`Config.probes` runs, unchecked: per (probe, seed) the step of divergence (−1: none) and the
    final train loss (NaN where diverged, [record])."""
    names = [name for name, _ in cfg.probes]
    unknown = sorted(set(names) - set(SAM_VARIANTS))
    if unknown:
        raise ValueError(f"probes must name variants among {SAM_VARIANTS}, got {unknown}")
    diverged, final = [], []
    for name, rho in cfg.probes:
        result = simulate(dataclasses.replace(cfg, **{f"rhos_{name}": (rho,)}), name, data, check=False)
        diverged.append(np.asarray(result.diverged_step)[:, 0])
        loss = np.asarray(result.metrics["train_loss"])[:, 0, -1]
        final.append(np.where(np.asarray(result.diverged_step)[:, 0] >= 0, np.nan, loss))
    shape = (len(cfg.probes), len(cfg.seeds))
    return {
        "probe_variant": np.asarray([VARIANTS.index(n) for n in names], dtype=np.int64),
        "probe_rho": np.asarray([rho for _, rho in cfg.probes], dtype=np.float64),
        "probe_diverged_step": np.asarray(diverged, dtype=np.int64).reshape(shape),
        "probe_final_train_loss": np.asarray(final, dtype=np.float64).reshape(shape),
    }


# --------------------------------------------------------------------------
# Figure.
# --------------------------------------------------------------------------


def final_train_loss(result: dict, name: str) -> np.ndarray:
    return result[f"{name}_train_loss"][..., -1]  # (seed, ρ)


def representative_index(result: dict, name: str) -> int:
    """Index of the representative ρ of a variant: the largest ρ at which every seed fits.

    Fitting means a final train loss ≤ :data:`FIT_TRAIN_LOSS`. The rule looks
    at the train loss only, never at the kinks, so the representative runs
    are not picked for the effect being measured. If no ρ fits (e.g. the
    quick configuration), the smallest ρ. ERM has only index 0.
    """
    fitted = np.all(final_train_loss(result, name) <= FIT_TRAIN_LOSS, axis=0)
    return int(np.flatnonzero(fitted)[-1]) if fitted.any() else 0


def _params(result: dict, name: str, seed_index: int, rho_index: int) -> dict:
    return {k: result[f"{name}_{k}"][seed_index, rho_index] for k in PARAM_NAMES}


def _draw_fits(axes, result: dict, cfg: Config, names: tuple[str, ...] = VARIANTS) -> None:
    x, y = result["x"], result["y"]
    margin = 0.1
    grid = np.linspace(x.min() - margin, x.max() + margin, 800)
    erm_curve = np.asarray(relu1d.predict(_params(result, "erm", 0, 0), grid))
    for ax, name in zip(axes, names):
        j = representative_index(result, name)
        params = _params(result, name, 0, j)
        curve = np.asarray(relu1d.predict(params, grid))
        ek = kinks_on_data(params, x, merge_frac=cfg.merge_frac, jump_frac=cfg.jump_frac)
        if name != "erm":
            ax.plot(grid, erm_curve, color="0.75", lw=1.2)
        ax.plot(grid, curve, color=COLORS[name], lw=2)
        ax.plot(x, y, "o", color="k", ms=5, zorder=3)
        # Kinks as ticks along the bottom edge (axes coordinates in y).
        ax.plot(ek.position, np.full(ek.position.shape, 0.03), "|", color=COLORS[name], ms=14, mew=2,
                transform=ax.get_xaxis_transform(), clip_on=False)
        rho = "" if name == "erm" else f", $\\rho$ = {result[f'{name}_rhos'][j]:g}"
        loss = final_train_loss(result, name)[0, j]
        ax.set_title(f"{LABELS[name]}{rho}: {ek.position.size} kinks\ntrain loss {loss:.0e}")
        ax.set_xlabel("x")
        ax.axvspan(x.min() - margin, x.min(), color="0.93", lw=0)
        ax.axvspan(x.max(), x.max() + margin, color="0.93", lw=0)
        ax.set_xlim(grid[0], grid[-1])
    axes[0].set_ylabel("f(x)")


def _erm_band(ax, result: dict, key: Callable[[dict, str], np.ndarray]) -> None:
    values = key(result, "erm")[:, 0]
    ax.axhline(np.median(values), color=COLORS["erm"], lw=1.5, label="ERM median")
    ax.axhspan(values.min(), values.max(), color="0.85", lw=0, label="ERM min–max")


def _probes_of(result: dict, name: str) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """The probe runs of a variant: (ρ, diverged step per seed, final train loss per seed)."""
    if "probe_variant" not in result:
        return []
    return [(float(result["probe_rho"][i]), result["probe_diverged_step"][i], result["probe_final_train_loss"][i])
            for i, v in enumerate(result["probe_variant"]) if VARIANTS[int(v)] == name]


def _probe_text(rho: float, diverged: np.ndarray, loss: np.ndarray, seeds: tuple[int, ...]) -> str:
    parts = [f"seed {seed} diverges at step {step}" if step >= 0 else
             f"seed {seed} {'fits' if value <= FIT_TRAIN_LOSS else 'stalls'} (train loss {value:.0e})"
             for seed, step, value in zip(seeds, diverged, loss)]
    return f"$\\rho$ = {rho:g}: " + "; ".join(parts)


def _kinks_against_rho(ax, result: dict, names: tuple[str, ...]) -> None:
    _erm_band(ax, result, lambda r, n: r[f"{n}_kinks"])
    bound = interpolant_kink_lower_bound(result["x"], result["y"])
    ax.axhline(bound, color="0.3", lw=1.2, ls=":", label=f"fewest for any interpolant ({bound})")
    offsets = np.linspace(0.96, 1.04, len(names))  # integer counts: separate the variants a little
    for name, offset in zip(names, offsets):
        rhos, kinks = result[f"{name}_rhos"], result[f"{name}_kinks"]
        fitted = np.all(final_train_loss(result, name) <= FIT_TRAIN_LOSS, axis=0)
        med = np.median(kinks, axis=0)
        err = np.stack([med - kinks.min(0), kinks.max(0) - med])
        ax.errorbar(rhos * offset, med, yerr=err, color=COLORS[name], lw=1.5, capsize=3, label=LABELS[name])
        ax.plot(rhos[fitted] * offset, med[fitted], "o", color=COLORS[name], ms=7)
        ax.plot(rhos[~fitted] * offset, med[~fitted], "o", mfc="white", mec=COLORS[name], ms=7)
        for rho, diverged, _ in _probes_of(result, name):
            ax.plot([rho * offset], [0.6], "X", color=COLORS[name], mec="k", ms=12, ls="none",
                    label=f"{LABELS[name]}, $\\rho$ = {rho:g}: {np.sum(diverged >= 0)} of {diverged.size} seeds diverge")
    _rho_axis(ax, result, names)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("kinks on the data range")
    ax.legend(loc="lower left", fontsize=9.5)


def _rho_axis(ax, result: dict, names: tuple[str, ...]) -> None:
    """Log ρ axis ticked at the grid values (and the probes), written plainly."""
    probes = [rho for name in names for rho, _, _ in _probes_of(result, name)]
    ticks = np.unique(np.concatenate([result[f"{name}_rhos"] for name in names] + [np.asarray(probes)]))
    ax.set_xscale("log")
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())


def _loss_against_rho(ax, result: dict, names: tuple[str, ...]) -> None:
    _erm_band(ax, result, final_train_loss)
    for name in names:
        rhos, loss = result[f"{name}_rhos"], final_train_loss(result, name)
        ax.plot(rhos, np.median(loss, 0), "-o", ms=6, color=COLORS[name], label=f"{LABELS[name]} median")
        ax.plot(rhos, loss.max(0), "--", lw=1.2, color=COLORS[name], label=f"{LABELS[name]} worst seed")
    ax.axhline(FIT_TRAIN_LOSS, color="0.3", lw=1.2, ls="-.", label=f"fit threshold {FIT_TRAIN_LOSS:g}")
    _rho_axis(ax, result, names)
    ax.set(yscale="log", ylabel="final train loss")
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * 100)  # two decades above the curves for the legend
    ax.legend(ncol=2, fontsize=9.5, loc="upper left")


def _tolerance_panel(ax, result: dict, cfg: Config, names: tuple[str, ...], headroom: float = 1.25) -> None:
    """Kinks (median, min–max over seeds) at every (merge, jump) tolerance, at each variant's representative ρ."""
    labels = [f"{100 * m:g}%\n{100 * jf:g}%" for m in cfg.merge_fracs_checked for jf in cfg.jump_fracs_checked]
    positions = np.arange(len(labels))
    i_merge, i_jump = cfg.merge_fracs_checked.index(cfg.merge_frac), cfg.jump_fracs_checked.index(cfg.jump_frac)
    primary = i_merge * len(cfg.jump_fracs_checked) + i_jump  # position in the flattened (merge, jump) grid
    ax.axvspan(primary - 0.45, primary + 0.45, color="0.9", lw=0, label="tolerance used elsewhere")
    bound = interpolant_kink_lower_bound(result["x"], result["y"])
    # On top of the counts (zorder): where a count sits at the bound, both stay visible.
    ax.axhline(bound, color="0.25", lw=1.5, ls=":", zorder=5, label=f"fewest for any interpolant ({bound})")
    for k, name in enumerate(names):
        j = representative_index(result, name)
        counts = result[f"{name}_kinks_tolerances"][:, j].reshape(len(cfg.seeds), -1)
        med = np.median(counts, 0)
        shift = (k - (len(names) - 1) / 2) * (0.3 / max(1, len(names) - 1))  # side by side within a setting
        rho = "" if name == "erm" else f", $\\rho$ = {result[f'{name}_rhos'][j]:g}"
        ax.errorbar(positions + shift, med, yerr=np.stack([med - counts.min(0), counts.max(0) - med]),
                    fmt="o", ms=8 if len(names) <= 2 else 6, capsize=3, color=COLORS[name], label=LABELS[name] + rho)
        if len(names) <= 2:  # join the settings of one merge tolerance (they are ordered by the jump tolerance)
            per_merge = len(cfg.jump_fracs_checked)
            for g in range(len(cfg.merge_fracs_checked)):
                chunk = slice(g * per_merge, (g + 1) * per_merge)
                ax.plot(positions[chunk] + shift, med[chunk], "-", color=COLORS[name], lw=1.5)
    ax.set_xticks(positions, labels)
    ax.set(xlabel="merge tolerance (× data spacing Δ) / jump tolerance (× largest jump)", ylabel="kinks")
    for g in range(1, len(cfg.merge_fracs_checked)):  # separate the merge-tolerance groups
        ax.axvline(g * len(cfg.jump_fracs_checked) - 0.5, color="0.8", lw=1)
    top = max(float(result[f"{name}_kinks_tolerances"].max()) for name in names)
    ax.set_ylim(0, headroom * top)  # room for the legend above the bars


def _point_figure(result: dict, cfg: Config) -> Figure:
    """The slide: ERM's and 1-SAM's fits, and their kink counts at every counting tolerance."""
    fig = Figure(figsize=(13.33, 5.6), layout="constrained")
    ax_erm, ax_one, ax_tol = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.7]})
    _draw_fits([ax_erm, ax_one], result, cfg, ("erm", "one_sam"))
    ax_one.sharey(ax_erm)
    ax_erm.set_title("(a) " + ax_erm.get_title())
    ax_one.set_title("(b) " + ax_one.get_title())
    _tolerance_panel(ax_tol, result, cfg, ("erm", "one_sam"))
    ax_tol.set_title(f"(c) kinks against the counting tolerance ({len(cfg.seeds)} seeds)")
    ax_tol.legend(loc="upper right")
    fig.suptitle(
        f"2-layer ReLU nets, width {cfg.width}, on the 12 points of Maennel et al.; full-batch GD, "
        f"{cfg.num_steps} steps. Bars: median and min–max over seeds. Ticks under the fits: the counted kinks",
        fontsize=style.CAPTION_FONTSIZE,
    )
    return fig


def _details_figure(result: dict, cfg: Config) -> Figure:
    fig = Figure(figsize=(14, 12.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 2.3])
    fit_axes = top.subplots(1, len(VARIANTS), sharey=True)
    _draw_fits(fit_axes, result, cfg)
    for ax, letter in zip(fit_axes, "abcde"):
        ax.set_title(f"({letter}) " + ax.get_title(), fontsize=11)
    top.suptitle(
        f"(a–e) seed {cfg.seeds[0]} at each variant's representative $\\rho$ (the largest at which every seed "
        "fits); dots: data; ticks: counted kinks; grey: the ERM fit",
        fontsize=style.CAPTION_FONTSIZE,
    )
    (ax_kn, ax_ku, ax_steps), (ax_ln, ax_lu, ax_tol) = bottom.subplots(2, 3)
    normalized, unnormalized = ("n_sam", "one_sam"), ("n_usam", "one_usam")
    _kinks_against_rho(ax_kn, result, normalized)
    ax_kn.set(xlabel=r"$\rho$ (radius)", title="(f) normalized SAM: kinks")
    _kinks_against_rho(ax_ku, result, unnormalized)
    ax_ku.set(xlabel=r"$\rho$ (ascent step)", title="(g) unnormalized SAM: kinks")
    ax_ku.set_ylim(ax_kn.get_ylim())
    _loss_against_rho(ax_ln, result, normalized)
    ax_ln.set(xlabel=r"$\rho$ (radius)", title="(i) normalized SAM: final train loss")
    _loss_against_rho(ax_lu, result, unnormalized)
    ax_lu.set(xlabel=r"$\rho$ (ascent step)", title="(j) unnormalized SAM: final train loss")
    probe_notes = []
    for name in unnormalized:
        for rho, diverged, loss in _probes_of(result, name):
            ax_lu.axvline(rho, color=COLORS[name], lw=1.5, ls=(0, (1, 3)))
            probe_notes.append(f"{LABELS[name]} at " + _probe_text(rho, diverged, loss, cfg.seeds))

    steps = np.maximum(result["steps"], 1)
    for name in VARIANTS:
        j = representative_index(result, name)
        counts = result[f"{name}_kinks_over_steps"][:, j]
        ax_steps.plot(steps, np.median(counts, 0), "-o", ms=4, color=COLORS[name], label=LABELS[name])
    decay_start = cfg.num_steps - max(1, round(cfg.decay_fraction * cfg.num_steps))
    ax_steps.axvline(decay_start, color="0.5", lw=1.2, ls=":", label="step starts to decay")
    ax_steps.set(xscale="log", yscale="log", xlabel="step (step 0 drawn at 1)", ylabel="kinks (median over seeds)",
                 title="(h) kinks along training, representative $\\rho$")
    ax_steps.yaxis.set_major_formatter(ScalarFormatter())
    ax_steps.yaxis.set_minor_formatter(ScalarFormatter())
    ax_steps.legend(loc="lower left", ncol=2)

    _tolerance_panel(ax_tol, result, cfg, VARIANTS, headroom=1.8)
    ax_tol.set_xlabel("merge tol. (× Δ) / jump tol. (× largest jump)")
    ax_tol.set_title("(k) kinks against the counting tolerance")
    ax_tol.legend(loc="upper right", ncol=2, fontsize=9.5)
    bottom.suptitle(
        f"width {cfg.width}, init scale {cfg.init_scale:g}, full-batch GD, step {cfg.learning_rate:g} decayed to 0 "
        f"over the last {100 * cfg.decay_fraction:g}% of {cfg.num_steps} steps; kinks merged within "
        f"{100 * cfg.merge_frac:g}% of Δ = {data_spacing(result['x']):g}, jumps < {100 * cfg.jump_frac:g}% of the "
        f"largest dropped.\n(f, g, k): median and min–max over {len(cfg.seeds)} seeds; hollow: some seed ends with "
        f"train loss > {FIT_TRAIN_LOSS:g}. (h): median over seeds.\n✕ in (g), dotted in (j): a probe one grid step "
        "beyond:\n" + ("\n".join(probe_notes) if probe_notes else "none"),
        fontsize=style.CAPTION_FONTSIZE,
    )
    return fig


def plot(result: dict, cfg: Config) -> dict[str, Figure]:
    """``relu_kinks.png``: the point on one slide; ``relu_kinks_details.png``: every variant, ρ and check."""
    return {"": _point_figure(result, cfg), "details": _details_figure(result, cfg)}


def summary(result: dict, cfg: Config) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in VARIANTS:
        kinks, loss, lam = result[f"{name}_kinks"], final_train_loss(result, name), result[f"{name}_sharpness"]
        for i, rho in enumerate(result[f"{name}_rhos"]):
            tag = name if name == "erm" else f"{name}_rho_{rho:g}"
            out[f"kinks_median_{tag}"] = float(np.median(kinks[:, i]))
            out[f"train_loss_median_{tag}"] = float(np.median(loss[:, i]))
            out[f"train_loss_max_{tag}"] = float(np.max(loss[:, i]))
            out[f"sharpness_median_{tag}"] = float(np.median(lam[:, i]))
        j = representative_index(result, name)
        medians = np.median(result[f"{name}_kinks_tolerances"][:, j], axis=0)
        tag = name if name == "erm" else f"{name}_rho_{result[f'{name}_rhos'][j]:g}"
        if name != "erm":
            out[f"representative_rho_{name}"] = float(result[f"{name}_rhos"][j])
        out[f"kinks_median_{tag}_tolerance_min"] = float(medians.min())
        out[f"kinks_median_{tag}_tolerance_max"] = float(medians.max())
    out["erm_max_sharpness_times_step"] = float(np.max(result["erm_sharpness"]) * cfg.learning_rate)
    losses = np.concatenate([final_train_loss(result, name).ravel() for name in VARIANTS])
    out["fraction_of_runs_fitted"] = float(np.mean(losses <= FIT_TRAIN_LOSS))
    return out
