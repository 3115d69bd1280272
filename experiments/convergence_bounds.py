"""Theorem 2 of Andriushchenko & Flammarion (2022): measured rates against the bounds.

Stochastic unnormalized SAM (same minibatch for ascent and descent, batch
size b) with the theorem's step sizes, on two families whose constants are
exact and whose assumptions hold globally:

* non-convex: ``ℓ_i(w) = Σ_j (w_j²/2 + c cos w_j) + ⟨a_i, w⟩`` (c = 2),
  measured ``(1/T) Σ_t E‖∇L(w_t)‖²`` against ``4β(L₀ − L*)/√T + 8σ²/(b√T)``;
* PL: ``ℓ_i(w) = ½ (w − c_i)ᵀA(w − c_i)``, measured ``E[L(w_T)] − L*``
  against ``3β²(L₀ − L*)/(μ²T²) + 22βσ²/(μ²bT)``.

Expectations are Monte Carlo means over seeds (vmapped) with 3-SE bars.

Conventions: [loss-mean], [rho-sam], [m], [rng].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from samtheory.theory import convergence as cv
from samtheory.models.nonconvex import CosineRidgeFamily
from samtheory.models.quadratic import QuadraticFamily
from samtheory.monte_carlo import estimate_mean
from samtheory.style import variant_color

NAME = "convergence_bounds"
TITLE = "Stochastic USAM: measured convergence against Theorem 2's bounds (non-convex and PL)"
CAPTION = "Stochastic USAM with Theorem 2's step sizes stays below both bounds at every horizon and decays at their rates, T^-1/2 (non-convex) and T^-1 (PL); the bounds are 5× and 265× loose at T = 10⁴."
CODE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Config:
    dim: int = 10
    n: int = 32
    batch: int = 4
    horizons: tuple[int, ...] = (10, 30, 100, 300, 1000, 3000, 10000)
    seeds: int = 128
    cosine_amplitude: float = 2.0
    noise_scale: float = 1.0
    spectrum_low: float = 0.5
    spectrum_high: float = 4.0
    problem_seed: int = 0


def config(quick: bool) -> Config:
    if quick:
        return Config(horizons=(10, 100, 1000), seeds=16)
    return Config()


def _families(cfg: Config):
    nonconvex = CosineRidgeFamily.draw(cfg.cosine_amplitude, cfg.n, cfg.dim, cfg.problem_seed, cfg.noise_scale)
    spectrum = np.geomspace(cfg.spectrum_low, cfg.spectrum_high, cfg.dim)
    pl = QuadraticFamily.from_spectrum(spectrum, cfg.n, cfg.problem_seed, center_scale=cfg.noise_scale)
    return nonconvex, pl


def _starts(cfg: Config, pl: QuadraticFamily):
    rng = np.random.default_rng(cfg.problem_seed + 1)
    return jnp.asarray(rng.uniform(-3, 3, cfg.dim)), jnp.asarray(pl.minimizer + 3 * rng.normal(size=cfg.dim))


def run(cfg: Config, progress: Callable[[float], None] | None = None) -> dict:
    nonconvex, pl = _families(cfg)
    w0_nc, w0_pl = _starts(cfg, pl)
    keys = jax.random.split(jax.random.PRNGKey(cfg.problem_seed), cfg.seeds)

    def monte_carlo(loss_fn, data, w0, gammas, rhos):
        one = lambda k: cv.run_stochastic_usam(loss_fn, w0, data, gammas=gammas, rhos=rhos, batch=cfg.batch, key=k)
        return jax.jit(jax.vmap(one))(keys)

    out = {name: [] for name in ("nc_mean", "nc_se", "nc_bound", "pl_mean", "pl_se", "pl_bound")}
    gap0_nc = float(nonconvex.loss_fn(w0_nc, nonconvex.batch)) - nonconvex.min_loss
    gap0_pl = float(pl.loss_fn(w0_pl, pl.batch)) - pl.min_loss
    for i, horizon in enumerate(cfg.horizons):
        gammas, rhos = cv.nonconvex_schedule(nonconvex.smoothness, horizon)
        runs = monte_carlo(nonconvex.loss_fn, nonconvex.batch, w0_nc, gammas, rhos)
        est = estimate_mean(np.asarray(runs.grad_norm_sq[:, :horizon].mean(axis=1)))
        out["nc_mean"].append(est.estimate)
        out["nc_se"].append(est.standard_error)
        out["nc_bound"].append(cv.nonconvex_bound(nonconvex.smoothness, nonconvex.noise_variance, cfg.batch, horizon, gap0_nc))

        gammas, rhos = cv.pl_schedule(pl.smoothness, pl.pl_constant, horizon)
        runs = monte_carlo(pl.loss_fn, pl.batch, w0_pl, gammas, rhos)
        est = estimate_mean(np.asarray(runs.loss[:, -1]) - pl.min_loss)
        out["pl_mean"].append(est.estimate)
        out["pl_se"].append(est.standard_error)
        out["pl_bound"].append(cv.pl_bound(pl.smoothness, pl.pl_constant, pl.noise_variance, cfg.batch, horizon, gap0_pl))
        if progress is not None:
            progress((i + 1) / len(cfg.horizons))
    result = {k: np.asarray(v) for k, v in out.items()}
    result["horizons"] = np.asarray(cfg.horizons)
    result["nc_violations"] = int(np.sum(result["nc_mean"] - 3 * result["nc_se"] > result["nc_bound"]))
    result["pl_violations"] = int(np.sum(result["pl_mean"] - 3 * result["pl_se"] > result["pl_bound"]))
    return result


def _slope(x, y) -> float:
    tail = slice(len(x) // 2, None)  # the asymptotic regime: the larger horizons
    return float(np.polyfit(np.log(x[tail]), np.log(y[tail]), 1)[0])


def plot(result: dict, cfg: Config) -> Figure:
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    ax_nc, ax_pl = fig.subplots(1, 2)
    t = result["horizons"].astype(float)
    color = variant_color("usam")  # the unnormalized step, with a minibatch ascent
    for ax, key, ylabel, rate in [
        (ax_nc, "nc", r"$\frac{1}{T}\sum_t \mathbb{E}\|\nabla L(w_t)\|^2$", r"$T^{-1/2}$"),
        (ax_pl, "pl", r"$\mathbb{E}L(w_T) - L^*$", r"$T^{-1}$"),
    ]:
        mean, se, bound = result[f"{key}_mean"], result[f"{key}_se"], result[f"{key}_bound"]
        # The bound is exactly c·rate, so it is its own rate reference: no separate T^-a line.
        ax.plot(t, bound, "k--", label=f"Theorem 2 bound ∝ {rate}")
        ax.errorbar(t, mean, yerr=3 * se, fmt="o-", ms=5, capsize=3, color=color,
                    label=f"measured, slope {_slope(t, mean):.2f} (±3 SE)")
        ax.set(xscale="log", yscale="log", xlabel="horizon T", ylabel=ylabel)
        ax.legend(loc="upper right")
    # A violation: the measured mean is above the bound by more than 3 SE at that horizon.
    ax_nc.set_title(f"(a) non-convex (c = {cfg.cosine_amplitude:g}): above the bound at "
                    f"{result['nc_violations']} of {t.size} T")
    ax_pl.set_title(f"(b) PL quadratic: above the bound at {result['pl_violations']} of {t.size} T")
    fig.suptitle(f"stochastic USAM, batch {cfg.batch}, d = {cfg.dim}, n = {cfg.n}; mean over {cfg.seeds} seeds")
    return fig


def summary(result: dict, cfg: Config) -> dict[str, float]:
    t = result["horizons"].astype(float)
    return {
        "nc_violations": float(result["nc_violations"]),
        "pl_violations": float(result["pl_violations"]),
        "nc_measured_slope": _slope(t, result["nc_mean"]),
        "pl_measured_slope": _slope(t, result["pl_mean"]),
        "nc_bound_over_measured_at_max_T": float(result["nc_bound"][-1] / result["nc_mean"][-1]),
        "pl_bound_over_measured_at_max_T": float(result["pl_bound"][-1] / result["pl_mean"][-1]),
    }
