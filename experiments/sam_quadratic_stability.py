"""SAM on quadratics: USAM's stability diagram and normalized SAM's 2-cycle.

(a) USAM on ``½λx²`` is stable iff ``ηλ(1 + ρλ) < 2``. Each grid point runs
the engine's USAM for a fixed number of steps from ``x₀ = 1`` and records
``log₁₀|x_T|``; the theoretical boundary is drawn on top.

(b) Full-batch normalized SAM on a quadratic with ``ηλ₁ < 1`` ends in a
2-cycle along the top eigenvector with amplitude ``ηρλ₁/(2 − ηλ₁)``
(Bartlett, Long & Bousquet 2023); measured amplitude against the formula over
a range of ``ηλ₁`` and ρ.

Conventions: [rho-sam], [normalize].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from matplotlib.figure import Figure

from samtheory.theory import quadratic_dynamics as qd
from samtheory import sam, train

NAME = "sam_quadratic_stability"
TITLE = "SAM on quadratics: USAM stability diagram and the normalized-SAM 2-cycle"
CAPTION = "USAM on a quadratic diverges exactly beyond the curve ηλ(1 + ρλ) = 2, well inside GD's stable region, and normalized SAM settles into a 2-cycle of the predicted amplitude ηρλ₁/(2 − ηλ₁)."
CODE_VERSION = 2


@dataclasses.dataclass(frozen=True)
class Config:
    grid: int = 121
    eta_lambda_max: float = 2.5
    rho_lambda_max: float = 3.0
    usam_steps: int = 500
    spectrum: tuple[float, ...] = (2.0, 0.8, 0.5, 0.3, 0.2)
    cycle_eta_lambdas: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    cycle_rhos: tuple[float, ...] = (0.01, 0.1, 1.0)
    cycle_steps: int = 5000
    seed: int = 0


def config(quick: bool) -> Config:
    if quick:
        return Config(grid=31, usam_steps=200, cycle_eta_lambdas=(0.2, 0.5, 0.8), cycle_steps=2000)
    return Config()


def _scalar_quadratic(p, batch):
    return 0.5 * jnp.mean(batch["lam"]) * p["x"] ** 2


def _quadratic(a_matrix):
    return lambda p, batch: 0.5 * p["x"] @ a_matrix @ p["x"] + 0.0 * jnp.sum(batch["dummy"])


def run(cfg: Config, progress: Callable[[float], None] | None = None) -> dict:
    eta = np.linspace(0, cfg.eta_lambda_max, cfg.grid)[1:]
    rho = np.linspace(0, cfg.rho_lambda_max, cfg.grid)
    one = {"lam": jnp.ones(1)}  # λ = 1, so η and ρ are ηλ and ρλ

    def usam_final(eta_, rho_):
        result = train.run(_scalar_quadratic, {"x": jnp.asarray(1.0)}, one, variant=sam.SAM(rho_, normalize=False),
                           num_steps=cfg.usam_steps, learning_rate=eta_, record_steps=np.array([cfg.usam_steps]),
                           metrics_fn=lambda p: {"x": p["x"]})
        return result.metrics["x"][-1], result.diverged_step

    grid_fn = jax.jit(jax.vmap(jax.vmap(usam_final, in_axes=(None, 0)), in_axes=(0, None)))
    x_final, diverged = grid_fn(jnp.asarray(eta), jnp.asarray(rho))
    if progress is not None:
        progress(0.5)
    # Diverged runs overflow to inf by design of the grid; they are reported as a
    # clipped value and flagged, never plotted as NaN.
    with np.errstate(divide="ignore"):
        log_abs = np.log10(np.abs(np.asarray(x_final)))
    diverged = np.asarray(diverged) >= 0
    # Exact zeros (fast decay underflows) are "very stable", not diverged.
    log_abs = np.where(np.isneginf(log_abs), -300.0, log_abs)
    log_abs = np.where(diverged | ~np.isfinite(log_abs), 300.0, log_abs)

    rng = np.random.default_rng(cfg.seed)
    q, _ = np.linalg.qr(rng.normal(size=(len(cfg.spectrum), len(cfg.spectrum))))
    a_matrix = jnp.asarray((q * np.asarray(cfg.spectrum)) @ q.T)
    lam1 = max(cfg.spectrum)
    x0 = jnp.asarray(rng.normal(size=len(cfg.spectrum)))
    loss = _quadratic(a_matrix)

    def cycle_amplitude(eta_lambda, rho_):
        result = train.run(loss, {"x": x0}, {"dummy": jnp.zeros(1)}, variant=sam.SAM(rho_),
                           num_steps=cfg.cycle_steps, learning_rate=eta_lambda / lam1,
                           record_steps=np.array([cfg.cycle_steps - 1, cfg.cycle_steps]),
                           metrics_fn=lambda p: {"norm": jnp.linalg.norm(p["x"]), "x": p["x"]})
        return result.metrics["norm"][-1], result.metrics["x"], result.diverged_step

    cycle_fn = jax.jit(jax.vmap(jax.vmap(cycle_amplitude, in_axes=(None, 0)), in_axes=(0, None)))
    etas_c = jnp.asarray(cfg.cycle_eta_lambdas)
    rhos_c = jnp.asarray(cfg.cycle_rhos)
    amplitude, last_two, cycle_diverged = cycle_fn(etas_c, rhos_c)
    if np.any(np.asarray(cycle_diverged) >= 0):
        raise train.DivergenceError("normalized SAM diverged on the 2-cycle grid")
    predicted = np.array([[qd.normalized_sam_cycle_radius(e / lam1, r, lam1) for r in cfg.cycle_rhos]
                          for e in cfg.cycle_eta_lambdas])
    last_two = np.asarray(last_two)
    antisymmetry = np.linalg.norm(last_two[:, :, 0] + last_two[:, :, 1], axis=-1) / np.asarray(amplitude)
    if progress is not None:
        progress(1.0)
    return {
        "eta_lambda": eta, "rho_lambda": rho, "log10_abs_x": log_abs, "diverged": diverged,
        "cycle_eta_lambda": np.asarray(cfg.cycle_eta_lambdas), "cycle_rho": np.asarray(cfg.cycle_rhos),
        "cycle_amplitude": np.asarray(amplitude), "cycle_predicted": predicted,
        "cycle_antisymmetry": antisymmetry,
    }


def plot(result: dict, cfg: Config) -> Figure:
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    fig.get_layout_engine().set(w_pad=0.15)
    ax_stab, ax_cycle = fig.subplots(1, 2)
    eta, rho = result["eta_lambda"], result["rho_lambda"]
    shown = np.clip(result["log10_abs_x"], -12, 12)  # the colour scale ends at |x_T| = 10^±12
    mesh = ax_stab.pcolormesh(eta, rho, shown.T, cmap="coolwarm", vmin=-12, vmax=12, shading="nearest")
    fig.colorbar(mesh, ax=ax_stab, label=rf"$\log_{{10}}|x_T|$, T = {cfg.usam_steps}")
    boundary = np.linspace(eta.min(), min(2.0, eta.max()), 200)
    ax_stab.plot(boundary, 2.0 / boundary - 1.0, "k", lw=2, label=r"$\eta\lambda(1+\rho\lambda) = 2$")
    ax_stab.axvline(2.0, color="k", ls=":", lw=1.5, label=r"GD's limit $\eta\lambda = 2$")
    ax_stab.set(xlim=(eta.min(), eta.max()), ylim=(rho.min(), rho.max()), xlabel=r"$\eta\lambda$",
                ylabel=r"$\rho\lambda$", title="(a) USAM on $\\frac{1}{2}\\lambda x^2$: blue stable, red diverges")
    ax_stab.legend(loc="upper right")
    # ρ is not a variant: a sequential palette, not the variant colours.
    shades = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.8, len(result["cycle_rho"])))
    for j, (r, shade) in enumerate(zip(result["cycle_rho"], shades)):
        ax_cycle.plot(result["cycle_eta_lambda"], result["cycle_predicted"][:, j], "-", lw=1.5, color=shade)
        ax_cycle.plot(result["cycle_eta_lambda"], result["cycle_amplitude"][:, j], "o", color=shade, ms=6,
                      label=rf"$\rho$ = {r:g}")
    ax_cycle.plot([], [], "-", color="0.4", label=r"$\eta\rho\lambda_1/(2-\eta\lambda_1)$")
    ax_cycle.plot([], [], "o", color="0.4", label="measured")
    ax_cycle.set(yscale="log", xlabel=r"$\eta\lambda_1$", ylabel=r"2-cycle amplitude $\|x_T\|$",
                 title="(b) normalized SAM: 2-cycle amplitude")
    low, high = np.min(result["cycle_amplitude"]), np.max(result["cycle_amplitude"])
    ax_cycle.set_ylim(low / 2, high * 30)  # room above the curves for the legend
    ax_cycle.legend(ncol=2, loc="upper left")
    return fig


def summary(result: dict, cfg: Config) -> dict[str, float]:
    eta, rho = np.meshgrid(result["eta_lambda"], result["rho_lambda"], indexing="ij")
    margin = eta * (1 + rho) / 2
    grew = result["log10_abs_x"] > 0
    clear = np.abs(margin - 1) > 0.02  # the boundary itself decays or grows too slowly to tell in T steps
    rel = np.abs(result["cycle_amplitude"] / result["cycle_predicted"] - 1)
    return {
        "stability_misclassified_fraction_off_boundary": float(np.mean(grew[clear] != (margin[clear] > 1))),
        "cycle_amplitude_max_relative_error": float(rel.max()),
        "cycle_max_antisymmetry_residual": float(result["cycle_antisymmetry"].max()),
    }
