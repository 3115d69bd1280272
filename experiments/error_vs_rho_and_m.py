"""Test error against ρ for ERM, random perturbations, n-SAM and m-SAM, and against m at fixed ρ.

Fig. 1 of Andriushchenko & Flammarion (2022, "Towards Understanding
Sharpness-Aware Minimization"; the repository's ``images/sam_fig1.png``)
trains ResNets on CIFAR with ERM, with random weight perturbations on a
sphere of radius ρ, with n-SAM (one worst-case perturbation for the whole
training set) and with 128-SAM (standard SAM on minibatches of 128), all
**normalized** (``deep_nets/sam.py`` divides by the gradient norm unless
``--sam_no_grad_norm``), ρ on a log grid from 0.025 (SAM; random from
0.4 to 50). Its shape: only m-SAM with a small m improves on ERM, with a
best ρ inside the grid (0.2 on CIFAR-10), beyond which it blows up; random
perturbations and n-SAM stay within ERM's seed band. The abstract adds that
the benefit "is amplified by using m-sharpness": smaller m, lower error.

This figure asks the same two questions on the package's two small models.

**Diagonal linear network** (the paper's own model for its theory, §3;
setting of ``dln_sparse_regression``): ``β = u⊙v``, ``u₀ = 0.1``, ``v₀ = 0``,
n = 20 Gaussian examples in d = 30, 3-sparse β*, noiseless; full-batch GD
with step 15/d for 10⁴ steps; SAM **unnormalized** (USAM, the paper's DLN
setting and Theorem 1's, [normalize]), so ρ is an ascent step, not a radius
([rho-sam]). Full batch makes n-SAM exact. m runs over every divisor of n
(1, 2, 4, 5, 10, 20 = n-SAM); the m-SAM curve of panel (a) is m = 4.
Random perturbations are ``RandomSAM`` (uniform on the ℓ₂ sphere of radius
ρ in (u, v)), whose ρ is a radius: a different unit from USAM's ascent
step, so random gets its own grid. A "seed" is a fresh problem draw
(:func:`samtheory.models.dln.sparse_regression`); test losses of different
draws differ by up to 100×, so the DLN panels show the paired ratio to ERM
on the same draw (geometric mean over draws, band min–max). A run that
diverges or ends with train loss above ``converged_train_loss`` is *failed*
and drawn as a cross, never as a value.

**MNIST-1D MLP** (40 → 64 → 10, ReLU, He init, float32): 4000 train / 1000
test signals, SGD with momentum 0.9, learning rate 0.05 with cosine decay,
minibatches of b = 100, ``num_steps`` steps; SAM **normalized** (Fig. 1's
setting). In stochastic training the library's n-SAM perturbs with the
minibatch gradient ([m]), so the MLP's "n-SAM" is m = b = 100 — Fig. 1's
"128-SAM" role, *not* its full-training-set n-SAM, which would cost a
full-data gradient per step. The MLP therefore tests the m-sharpness
direction (m < b against m = b), not n-SAM over 4000 examples.

ρ and seeds are vmapped: one compiled call per (model, m) and per random /
ERM family. Headline numbers (:func:`summary`): the best ρ of each variant
(never at a grid edge: :func:`best_rho` refuses one), the error there with
its seed spread, and the slope of log error (or log error ratio) against
log m at a fixed ρ.

Conventions: [loss-mean], [loss-sq], [alpha], [rho-sam], [m], [normalize],
[record], [rng], [float], [data-layout].
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from samtheory import mlp_training as mt
from samtheory import sam, train
from samtheory.data import load_mnist1d
from samtheory.models import dln, mlp
from samtheory.style import CAPTION_FONTSIZE, VARIANT_COLORS, VARIANT_LABELS

NAME = "error_vs_rho_and_m"
TITLE = "Test error against rho (ERM, random, n-SAM, m-SAM) and against m: Fig. 1 of Andriushchenko & Flammarion (2022) on a DLN and an MNIST-1D MLP"
CODE_VERSION = 0
CAPTION = ("At a fixed ρ, the fewer examples per worst-case perturbation (smaller m), the lower the test error on both "
           "models, while n-SAM does nothing on the DLN.")
# Said on the figure under the caption: where this small-scale run departs from Fig. 1.
DEPARTURE = ("Unlike Fig. 1, random perturbations help too (DLN: most of all, as an explicit ℓ₁-like penalty, "
             "without interpolating; MLP: at a 30× larger radius).")


@dataclasses.dataclass(frozen=True)
class DLNConfig:
    n: int = 20
    d: int = 30
    k: int = 3
    n_test: int = 1000
    init_scale: float = 0.1
    step_size_times_d: float = 15.0
    num_steps: int = 10_000
    seeds: tuple[int, ...] = (1, 2, 3, 4)
    #: Chunk sizes; every one must divide n, and n itself is n-SAM.
    ms: tuple[int, ...] = (1, 2, 4, 10, 20)
    msam_m: int = 4
    #: USAM ascent steps for n-SAM and m-SAM ([rho-sam]).
    rhos: tuple[float, ...] = (0.025, 0.05, 0.1, 0.2, 0.4, 0.8)
    #: Radii of the random perturbations.
    random_rhos: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
    #: The fixed ρ of the error-against-m panel: inside the grid, where every m converges on every draw.
    trend_rho: float = 0.1
    converged_train_loss: float = 1e-5


@dataclasses.dataclass(frozen=True)
class MLPConfig:
    data_path: str = ".cache/samtheory/data/mnist1d_n5000_seed42.npz"
    num_samples: int = 5000
    train_split: float = 0.8
    data_seed: int = 42
    hidden: tuple[int, ...] = (64,)
    activation: str = "relu"
    init: str = "he"
    dtype: str = "float32"
    learning_rate: float = 0.1
    momentum: float = 0.9
    batch_size: int = 100
    num_steps: int = 2000
    seeds: tuple[int, ...] = (0, 1, 2)
    #: Chunk sizes; every one must divide batch_size, which itself is n-SAM over the minibatch.
    ms: tuple[int, ...] = (2, 10, 100)
    msam_m: int = 10
    #: Normalized SAM radii.
    rhos: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
    random_rhos: tuple[float, ...] = (0.4, 1.6, 6.4, 25.6)
    #: The fixed ρ of the error-against-m panel (inside the grid).
    trend_rho: float = 0.2


@dataclasses.dataclass(frozen=True)
class Config:
    dln: DLNConfig = DLNConfig()
    mlp: MLPConfig = MLPConfig()


def config(quick: bool) -> Config:
    if quick:
        return Config(
            dln=DLNConfig(num_steps=2000, seeds=(1, 2, 3), ms=(1, 4, 20), rhos=(0.025, 0.1, 0.4, 0.8),
                          random_rhos=(0.1, 1.0)),
            mlp=MLPConfig(hidden=(16,), num_steps=150, ms=(10, 100), rhos=(0.05, 0.2, 0.8), random_rhos=(1.6,),
                          seeds=(0, 1, 2)),
        )
    return Config()


def _check_config(cfg: Config) -> None:
    c, m = cfg.dln, cfg.mlp
    for name, part in (("dln", c), ("mlp", m)):
        if len(part.seeds) < 2 or len(set(part.seeds)) != len(part.seeds):
            raise ValueError(f"{name}.seeds must be at least 2 distinct seeds, got {part.seeds}")
        if list(part.rhos) != sorted(set(part.rhos)) or part.rhos[0] <= 0:
            raise ValueError(f"{name}.rhos must be increasing and > 0, got {part.rhos}")
        if part.msam_m not in part.ms:
            raise ValueError(f"{name}.msam_m={part.msam_m} must be one of {name}.ms={part.ms}")
        if part.trend_rho not in part.rhos[1:-1]:
            raise ValueError(f"{name}.trend_rho={part.trend_rho} must be an interior point of {name}.rhos={part.rhos}")
    if any(c.n % m_ for m_ in c.ms) or c.n not in c.ms:
        raise ValueError(f"dln.ms must divide n={c.n} and contain it, got {c.ms}")
    if any(m.batch_size % m_ for m_ in m.ms) or m.batch_size not in m.ms:
        raise ValueError(f"mlp.ms must divide batch_size={m.batch_size} and contain it, got {m.ms}")


# ---------------------------------------------------------------------------
# Diagonal linear network


def _dln_sweep(c: DLNConfig, make_variant: Callable, rhos) -> dict:
    """Final train and test loss for ``make_variant(rho)`` over ``seeds × rhos`` (one vmapped call)."""
    params0 = dln.init_uv(c.d, c.init_scale)

    def run_one(rho, key):
        data_key, perturbation_key = jax.random.split(key)
        problem = dln.sparse_regression(data_key, c.n, c.d, c.k, c.n_test)
        result = train.run(
            dln.loss_uv, params0, problem.train, variant=make_variant(rho), num_steps=c.num_steps,
            learning_rate=c.step_size_times_d / c.d, record_steps=np.array([c.num_steps]),
            metrics_fn=lambda p: {"train": dln.loss_uv(p, problem.train), "test": dln.loss_uv(p, problem.test)},
            key=perturbation_key,
        )
        return result.metrics["train"][-1], result.metrics["test"][-1]

    train_loss, test_loss = jax.jit(lambda r, s: train.sweep(run_one, r, s))(jnp.asarray(rhos), jnp.asarray(c.seeds))
    return {"train": np.asarray(train_loss), "test": np.asarray(test_loss)}  # (seeds, rhos)


def run_dln(c: DLNConfig) -> dict:
    """Final losses of every DLN run; non-finite entries are diverged runs ([record])."""
    out: dict = {}
    trains, tests = [], []
    for m in c.ms:
        # ρ = 0 is ERM exactly (ε = 0·g); it rides in the n-SAM sweep instead of a compile of its own.
        rhos = (0.0, *c.rhos) if m == c.n else c.rhos
        swept = _dln_sweep(c, lambda r, m=m: sam.SAM(r, m=None if m == c.n else m, normalize=False), rhos)
        if m == c.n:
            out["dln_erm_train"], out["dln_erm_test"] = swept["train"][:, 0], swept["test"][:, 0]
            swept = {key: value[:, 1:] for key, value in swept.items()}
        trains.append(swept["train"])
        tests.append(swept["test"])
    out["dln_sam_train"], out["dln_sam_test"] = np.stack(trains), np.stack(tests)  # (ms, seeds, rhos)
    random = _dln_sweep(c, sam.RandomSAM, c.random_rhos)
    out["dln_random_train"], out["dln_random_test"] = random["train"], random["test"]
    return out


def dln_failed(train_loss: np.ndarray, c: DLNConfig) -> np.ndarray:
    """Diverged (non-finite) or not interpolating (train loss above ``converged_train_loss``)."""
    return ~np.isfinite(train_loss) | ~(train_loss <= c.converged_train_loss)


# ---------------------------------------------------------------------------
# MNIST-1D MLP


def run_mlp(m_cfg: MLPConfig) -> dict:
    """Final 0-1 test and train error of every MLP lane, ``(seeds,)`` or ``(…, rhos, seeds)``."""
    dtype = mt.float_dtype(m_cfg.dtype)
    ds = load_mnist1d(m_cfg.data_path, num_samples=m_cfg.num_samples, train_split=m_cfg.train_split,
                      seed=m_cfg.data_seed)
    x_test, y_test = jnp.asarray(ds.x_test, dtype), jnp.asarray(ds.y_test, jnp.int32)
    x_train = jnp.asarray(ds.x_train, dtype)

    def metrics(params, labels):
        return {
            "test_error": mlp.zero_one_error(params, (x_test, y_test), activation=m_cfg.activation),
            "train_error": mlp.zero_one_error(params, (x_train, labels), activation=m_cfg.activation),
        }

    common = dict(
        x_train=ds.x_train, label_sets=ds.y_train[None], sizes=(ds.x_train.shape[1], *m_cfg.hidden, ds.num_classes),
        activation=m_cfg.activation, init=m_cfg.init, dtype=dtype, num_steps=m_cfg.num_steps,
        batch_size=m_cfg.batch_size, momentum=m_cfg.momentum, record_steps=np.array([m_cfg.num_steps]),
        metrics_fn=metrics,
    )

    def lanes(rhos):
        return mt.lane_grid(rho=tuple(rhos), learning_rate=(m_cfg.learning_rate,), label_index=(0,), seed=m_cfg.seeds)

    def final(result, shape, key):
        return np.asarray(result.metrics[key][:, -1], np.float64).reshape(shape[0], shape[-1])  # (rhos, seeds)

    out: dict = {"mlp_n_train": len(ds.x_train), "mlp_n_test": len(ds.x_test)}
    tests, trains = [], []
    for m in m_cfg.ms:
        n_sam = m == m_cfg.batch_size
        # rho = 0 is ERM exactly (module docstring of samtheory.mlp_training); it rides in the n-SAM call.
        grid, shape = lanes((0.0, *m_cfg.rhos) if n_sam else m_cfg.rhos)
        result = mt.train_lanes(lanes=grid, m=None if n_sam else m, **common)
        test, train_error = final(result, shape, "test_error"), final(result, shape, "train_error")
        if n_sam:
            out["mlp_erm_test"], out["mlp_erm_train"] = test[0], train_error[0]
            test, train_error = test[1:], train_error[1:]
        tests.append(test)
        trains.append(train_error)
    out["mlp_sam_test"], out["mlp_sam_train"] = np.stack(tests), np.stack(trains)  # (ms, rhos, seeds)
    grid, shape = lanes(m_cfg.random_rhos)
    random = mt.train_lanes(lanes=grid, m=None, variant_fn=sam.RandomSAM, **common)
    out["mlp_random_test"], out["mlp_random_train"] = final(random, shape, "test_error"), final(random, shape, "train_error")
    return out


# ---------------------------------------------------------------------------
# The figure's computation and its headline numbers


def run(cfg: Config, progress: Callable[[float], None] | None = None) -> dict:
    _check_config(cfg)
    out = run_dln(cfg.dln)
    if progress is not None:
        progress(0.3)
    out.update(run_mlp(cfg.mlp))
    if progress is not None:
        progress(1.0)
    return out


ALLOW_NONFINITE = frozenset({"dln_sam_train", "dln_sam_test", "dln_random_train", "dln_random_test"})


def dln_ratios(result: dict, cfg: Config) -> dict:
    """Paired DLN test-loss ratios to ERM on the same draw; failed runs are NaN. Keys as in :func:`run`."""
    c = cfg.dln
    erm = result["dln_erm_test"]
    sam_ratio = result["dln_sam_test"] / erm[None, :, None]  # (ms, seeds, rhos)
    sam_ratio = np.where(dln_failed(result["dln_sam_train"], c), np.nan, sam_ratio)
    random_ratio = result["dln_random_test"] / erm[:, None]
    # Random perturbations of fixed radius never let GD interpolate exactly: only divergence fails them.
    random_ratio = np.where(np.isfinite(result["dln_random_train"]), random_ratio, np.nan)
    return {"sam": sam_ratio, "random": random_ratio}


def geometric_mean(ratios: np.ndarray, axis: int) -> np.ndarray:
    """Geometric mean along ``axis``; NaN where any entry is NaN (one failed seed fails the point)."""
    return np.exp(np.mean(np.log(ratios), axis=axis))


def best_rho(curve: np.ndarray, rhos) -> tuple[int, bool]:
    """``(index, interior)`` of the smallest finite entry of ``curve``; ``interior`` is False at a grid edge."""
    if not np.any(np.isfinite(curve)):
        raise ValueError("every point of the curve failed; no best rho")
    j = int(np.nanargmin(curve))
    return j, 0 < j < len(rhos) - 1


def log_log_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x`` over the finite entries."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    keep = np.isfinite(y) & (y > 0)
    if keep.sum() < 2:
        raise ValueError("need at least two finite positive points for a slope")
    return float(np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)[0])


def headline(result: dict, cfg: Config) -> dict:
    """Best ρ per variant, the error there with its seed spread, and the m trend (see module docstring)."""
    c, m_cfg = cfg.dln, cfg.mlp
    out: dict = {}
    ratios = dln_ratios(result, cfg)
    i_n, i_m = c.ms.index(c.n), c.ms.index(c.msam_m)
    for key, curves, rhos in (("n_sam", ratios["sam"][i_n], c.rhos), ("m_sam", ratios["sam"][i_m], c.rhos),
                              ("random", ratios["random"], c.random_rhos)):
        mean = geometric_mean(curves, axis=0)
        j, interior = best_rho(mean, rhos)
        out[f"dln_{key}"] = dict(rho=rhos[j], interior=interior, ratio=float(mean[j]),
                                 ratio_min=float(np.min(curves[:, j])), ratio_max=float(np.max(curves[:, j])))
    j_fixed = c.rhos.index(c.trend_rho)
    per_m = geometric_mean(ratios["sam"][:, :, j_fixed], axis=1)
    out["dln_m_trend"] = dict(rho=c.trend_rho, ms=c.ms, ratio=per_m, slope=log_log_slope(c.ms, per_m),
                              failed=np.sum(np.isnan(ratios["sam"][:, :, j_fixed]), axis=1))

    erm = result["mlp_erm_test"]
    out["mlp_erm"] = dict(error=float(erm.mean()), spread=float(erm.std()), train_error=float(result["mlp_erm_train"].mean()))
    i_n, i_m = m_cfg.ms.index(m_cfg.batch_size), m_cfg.ms.index(m_cfg.msam_m)
    for key, curves, rhos in (("n_sam", result["mlp_sam_test"][i_n], m_cfg.rhos),
                              ("m_sam", result["mlp_sam_test"][i_m], m_cfg.rhos),
                              ("random", result["mlp_random_test"], m_cfg.random_rhos)):
        mean = curves.mean(axis=1)
        j, interior = best_rho(mean, rhos)
        train_error = (result["mlp_random_train"] if key == "random" else
                       result["mlp_sam_train"][m_cfg.ms.index(m_cfg.batch_size if key == "n_sam" else m_cfg.msam_m)])
        out[f"mlp_{key}"] = dict(rho=rhos[j], interior=interior, error=float(mean[j]), spread=float(curves[j].std()),
                                 train_error=float(train_error[j].mean()))
    j_fixed = m_cfg.rhos.index(m_cfg.trend_rho)
    at_rho = result["mlp_sam_test"][:, j_fixed]
    out["mlp_m_trend"] = dict(rho=m_cfg.trend_rho, ms=m_cfg.ms, error=at_rho.mean(axis=1), spread=at_rho.std(axis=1),
                              slope=log_log_slope(m_cfg.ms, at_rho.mean(axis=1)))
    return out


def summary(result: dict, cfg: Config) -> dict[str, float]:
    h = headline(result, cfg)
    out: dict[str, float] = {}
    for key, values in h.items():
        for name, value in values.items():
            if name == "ms":
                continue
            for suffix, v in (zip((f"_m{m}" for m in values["ms"]), value) if np.ndim(value) else [("", value)]):
                if np.isfinite(v):  # a failed point (NaN) is counted in the "failed" entries instead
                    out[f"{key}_{name}{suffix}"] = float(v)
    return out


# ---------------------------------------------------------------------------
# Figure


def _curve(ax, x, center, low, high, key, label=None, marker="o"):
    color = VARIANT_COLORS[key]
    ax.plot(x, center, "-" + marker, color=color, label=label or VARIANT_LABELS[key])
    ax.fill_between(x, low, high, color=color, alpha=0.18, lw=0)


def _mark_failed(ax, x, failed, y, key):
    """A cross at ``y`` (top of the axis) for every ρ at which some seed failed."""
    if np.any(failed):
        ax.plot(np.asarray(x)[failed], np.full(int(np.sum(failed)), y), "x", ms=9, mew=2,
                color=VARIANT_COLORS[key], clip_on=False)


def plot(result: dict, cfg: Config) -> Figure:
    c, m_cfg = cfg.dln, cfg.mlp
    h = headline(result, cfg)
    ratios = dln_ratios(result, cfg)
    fig = Figure(figsize=(13.3, 8.2), layout="constrained")
    (ax_a, ax_b), (ax_c, ax_d) = fig.subplots(2, 2)

    # (a) DLN: ratio to ERM against ρ.
    ratio_all = np.concatenate([ratios["sam"][np.isfinite(ratios["sam"])], ratios["random"][np.isfinite(ratios["random"])]])
    top = max(2.0, float(np.max(ratio_all)) * 1.3)
    ax_a.axhline(1.0, color=VARIANT_COLORS["erm"], lw=1.5, label=f"{VARIANT_LABELS['erm']} (= 1, same draw)")
    for key, curves, rhos in (("random", ratios["random"], c.random_rhos),
                              ("n_sam", ratios["sam"][c.ms.index(c.n)], c.rhos),
                              ("m_sam", ratios["sam"][c.ms.index(c.msam_m)], c.rhos)):
        label = {"n_sam": f"n-SAM (m = n = {c.n})", "m_sam": f"m-SAM (m = {c.msam_m})",
                 "random": "random (ρ = radius; no interpolation)"}[key]
        _curve(ax_a, rhos, geometric_mean(curves, 0), np.min(curves, 0), np.max(curves, 0), key, label)
        _mark_failed(ax_a, rhos, np.any(np.isnan(curves), axis=0), top, key)
    ax_a.set(xscale="log", yscale="log", ylim=(None, top), xlabel="ρ (SAM: ascent step, unnormalized; random: radius)",
             ylabel="test loss / ERM's (same draw)",
             title=f"(a) DLN, {len(c.seeds)} draws: geo-mean, band min–max; × = a draw failed")
    ax_a.legend(loc="lower left")

    # (b) DLN: against m at the m-SAM's best ρ.
    trend = h["dln_m_trend"]
    j = c.rhos.index(trend["rho"])
    at_rho = ratios["sam"][:, :, j]  # (ms, seeds)
    best_over_rho = np.nanmin(geometric_mean(ratios["sam"], axis=1), axis=1)
    _curve(ax_b, c.ms, geometric_mean(at_rho, 1), np.min(at_rho, 1), np.max(at_rho, 1), "m_sam",
           f"m-SAM at ρ = {trend['rho']:g} (slope {trend['slope']:.2f})")
    ax_b.plot(c.ms, best_over_rho, "--s", color=VARIANT_COLORS["m_sam"], mfc="white", ms=6, label="each m at its own best ρ")
    ax_b.axhline(1.0, color=VARIANT_COLORS["erm"], lw=1.5, label="ERM")
    ax_b.set(xscale="log", yscale="log", xlabel=f"m (n = {c.n} = n-SAM)", ylabel="test loss / ERM's (same draw)",
             title="(b) DLN: amplified by m-sharpness")
    ax_b.set_xticks(c.ms, [str(m) for m in c.ms])
    ax_b.legend(loc="lower right")

    # (c) MLP: test error against ρ.
    erm = result["mlp_erm_test"]
    ax_c.axhspan(erm.min(), erm.max(), color=VARIANT_COLORS["erm"], alpha=0.12, lw=0)
    ax_c.axhline(erm.mean(), color=VARIANT_COLORS["erm"], lw=1.5, label="ERM (band: seeds)")
    for key, curves, rhos in (("random", result["mlp_random_test"], m_cfg.random_rhos),
                              ("n_sam", result["mlp_sam_test"][m_cfg.ms.index(m_cfg.batch_size)], m_cfg.rhos),
                              ("m_sam", result["mlp_sam_test"][m_cfg.ms.index(m_cfg.msam_m)], m_cfg.rhos)):
        label = {"n_sam": f"n-SAM over the minibatch (m = b = {m_cfg.batch_size})",
                 "m_sam": f"m-SAM (m = {m_cfg.msam_m})", "random": "random (ρ = radius)"}[key]
        _curve(ax_c, rhos, curves.mean(1), curves.min(1), curves.max(1), key, label)
    ax_c.set(xscale="log", xlabel="ρ (normalized: radius)", ylabel="test error",
             title=f"(c) MNIST-1D MLP, {len(m_cfg.seeds)} seeds: mean, band min–max")
    ax_c.legend(loc="upper left")

    # (d) MLP: against m at the m-SAM's best ρ.
    trend = h["mlp_m_trend"]
    j = m_cfg.rhos.index(trend["rho"])
    at_rho = result["mlp_sam_test"][:, j]  # (ms, seeds)
    _curve(ax_d, m_cfg.ms, at_rho.mean(1), at_rho.min(1), at_rho.max(1), "m_sam",
           f"m-SAM at ρ = {trend['rho']:g} (log-log slope {trend['slope']:.3f})")
    ax_d.plot(m_cfg.ms, result["mlp_sam_test"].mean(axis=2).min(axis=1), "--s", color=VARIANT_COLORS["m_sam"],
              mfc="white", ms=6, label="each m at its own best ρ")
    ax_d.axhspan(erm.min(), erm.max(), color=VARIANT_COLORS["erm"], alpha=0.12, lw=0)
    ax_d.axhline(erm.mean(), color=VARIANT_COLORS["erm"], lw=1.5, label="ERM")
    ax_d.set(xscale="log", xlabel=f"m (b = {m_cfg.batch_size} = n-SAM over the minibatch)", ylabel="test error",
             title="(d) MLP: amplified by m-sharpness")
    ax_d.set_xticks(m_cfg.ms, [str(m) for m in m_cfg.ms])
    ax_d.legend(loc="upper left")

    fig.suptitle(
        f"Fig. 1 of Andriushchenko & Flammarion (2022) at small scale. Top: DLN u⊙v, n = {c.n}, d = {c.d}, "
        f"GD {c.step_size_times_d:g}/d × {c.num_steps} steps, unnormalized SAM.\nBottom: MLP "
        f"{'-'.join(map(str, (40, *m_cfg.hidden, 10)))}, {result['mlp_n_train']} train, SGD b = {m_cfg.batch_size} "
        f"× {m_cfg.num_steps} steps, normalized SAM.\n{CAPTION}\n{DEPARTURE}",
        fontsize=CAPTION_FONTSIZE,
    )
    return fig
