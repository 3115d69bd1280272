"""Does m-sharpness predict the generalization gap better at small m? (small-scale Foret et al. 2021, Fig. 3 right)

Foret et al. (2021, §4.1) train a grid of models and find that m-sharpness
([m]: the worst-case loss increase in a ρ-ball, maximized separately on
chunks of m examples and averaged) tracks the generalization gap better as m
decreases; they follow the framework of Jiang et al. (2019, "Fantastic
generalization measures"), who rank complexity measures by how well they
order a grid of trained networks by their gap. This figure makes the same
measurement on MNIST-1D MLPs, with Kendall's rank correlation τ, and reports
what it finds. (Foret et al.'s footnote reports mutual information between
measure and gap; τ is Jiang et al.'s other criterion and needs no binning.)

Setup (every choice is a :class:`Config` field):

* **Data**: the standard MNIST-1D set (4000 train, 1000 test), generated
  locally by :func:`samtheory.data.load_mnist1d` into ``data_path``.
* **Grid** (36 models, one seed each): hidden width ∈ {64, 96, 128} (two
  hidden layers, ReLU, He init) × SAM training radius ρ ∈ {0 (ERM), 0.05,
  0.1} (normalized n-SAM over the minibatch, [rho-sam]) × peak learning
  rate ∈ {0.05, 0.1} × label noise ∈ {0, 10 %} ([label-noise]). Models of
  one width share a shape and are trained in one vmapped call.
* **Training to a fixed train loss** (Jiang et al.'s protocol): SGD,
  momentum 0.9, cosine decay over at most 4000 steps (100 epochs),
  minibatches of 100, float32; each model is taken at the first recorded
  step (every ``record_every`` = 100 steps) where its cross-entropy on the
  whole training set (with its own, possibly noisy, labels) is at most
  ``target_loss`` = 0.05. Why not a fixed step budget: with cross-entropy
  the curvature shrinks as the loss goes to zero (the softmax saturates),
  so at a fixed budget sharpness mostly measures how far each model drove
  its loss down, and under-fitted models (small gap, high loss, high
  sharpness) reverse the ranking; a first version of this figure with a
  fixed budget measured τ < 0 for every m ≥ 4. Models that never reach the
  target (one of the 36 when the figure was made: width 64, ρ = 0.1,
  lr 0.05, 10 % noise) are taken at the last step, flagged in ``reached``,
  drawn as ✕ and left out of every correlation. Smaller
  widths, smaller learning rates and 20 % noise were left out of the grid
  because those models do not reach the target within the budget.
* **Generalization gap** (primary): test error − train error, both 0-1,
  the train error on the labels the model was trained on (noisy ones for
  noisy models; it can be negative there). Secondary: test − train
  cross-entropy.
* **m-sharpness** (:func:`samtheory.sharpness.m_sharpness`) of the training
  loss on the first ``eval_size`` = 1024 training examples, with the
  labels the model was trained on, for m ∈ {1, 4, 16, 64, 256, 1024}
  (m = 1024 is the sharpness of that whole subset), at ℓ₂ radii
  ``rho_evals`` in parameter space; ρ_eval = 0.05 (Foret et al.'s default
  radius) is the primary one, fixed before the figure was made. The inner maximum is estimated by
  ``ascent_steps`` = 10 projected normalized-gradient ascent steps from the
  SAM perturbation (no random restarts), so every value is a lower bound
  on the exact maximum; on four trained width-64 models it was within
  0.3 % of 50 steps with 4 random restarts, for m = 1, 16 and 1024.
* **Correlation**: Kendall's τ_b between S_m and the gap over the models
  that reached the target, with scipy's p-value, per m; and Jiang et al.'s
  granulated coefficient: for each hyperparameter axis, τ along that axis
  with the other three fixed, averaged over those settings whose models all
  reached the target (ψ), and Ψ = mean ψ. ``summary`` also gives τ within
  each noise level, to show the trend is not only the noise axis.

Conventions: [loss-mean], [rho-sam], [m], [normalize], [record], [rng],
[float], [data-layout], [label-noise].
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from samtheory import mlp_training as mt
from samtheory import sharpness, style
from samtheory.data import load_mnist1d, with_label_noise
from samtheory.models import mlp

NAME = "m_sharpness_correlation"
TITLE = "m-sharpness against the generalization gap of MNIST-1D MLPs: Kendall tau per m (Foret et al. Fig. 3 right)"
CAPTION = "m-sharpness ranks the generalization gap of the 35 trained MLPs only for small m: Kendall τ is 0.39 at m = 1 and falls to 0.02 at m = 1024."
CODE_VERSION = 0

#: The hyperparameter axes of the grid, in the order of the result arrays' leading axes.
AXES = ("width", "train_rho", "learning_rate", "noise_rate")
GAPS = ("error_gap", "loss_gap")
#: ψ of an axis none of whose settings had every model reach the target is NaN; the plot leaves it out and says so.
ALLOW_NONFINITE = frozenset({"psi_error_gap", "psi_loss_gap"})


@dataclasses.dataclass(frozen=True)
class Config:
    data_path: str = ".cache/samtheory/data/mnist1d_n5000_seed42.pkl"
    num_samples: int = 5000
    train_split: float = 0.8
    data_seed: int = 42
    widths: tuple[int, ...] = (64, 96, 128)
    depth: int = 2
    train_rhos: tuple[float, ...] = (0.0, 0.05, 0.1)
    learning_rates: tuple[float, ...] = (0.05, 0.1)
    noise_rates: tuple[float, ...] = (0.0, 0.1)
    noise_seed: int = 0
    seed: int = 0
    activation: str = "relu"
    init: str = "he"
    dtype: str = "float32"
    momentum: float = 0.9
    batch_size: int = 100
    num_steps: int = 4000
    record_every: int = 100
    target_loss: float = 0.05
    eval_size: int = 1024
    ms: tuple[int, ...] = (1, 4, 16, 64, 256, 1024)
    rho_evals: tuple[float, ...] = (0.05, 0.1)
    primary_rho_eval: float = 0.05
    ascent_steps: int = 10
    ascent_restarts: int = 0
    sharpness_seed: int = 1


def config(quick: bool) -> Config:
    if quick:
        return Config(
            widths=(8, 16), train_rhos=(0.0, 0.1), learning_rates=(0.05, 0.1), num_steps=100,
            record_every=25, target_loss=2.0, eval_size=64, ms=(1, 64), rho_evals=(0.05,), ascent_steps=2,
        )
    return Config()


def _check_config(cfg: Config) -> None:
    for name in ("widths", "train_rhos", "learning_rates", "noise_rates", "ms", "rho_evals"):
        if not getattr(cfg, name):
            raise ValueError(f"{name} must not be empty")
    for name in ("widths", "train_rhos", "learning_rates", "noise_rates", "ms", "rho_evals"):
        values = getattr(cfg, name)
        if len(set(values)) != len(values):
            raise ValueError(f"{name} must have distinct values, got {values}")
    for name in ("widths", "train_rhos", "learning_rates", "noise_rates"):
        if len(getattr(cfg, name)) < 2:
            # A grid axis with one value has no order for the granulated τ to rank.
            raise ValueError(f"{name} must have at least two values (it is a grid axis), got {getattr(cfg, name)}")
    bad = [m for m in cfg.ms if cfg.eval_size % m]
    if bad:
        raise ValueError(f"ms must divide eval_size={cfg.eval_size}, got {bad}")
    if cfg.primary_rho_eval not in cfg.rho_evals:
        raise ValueError(f"primary_rho_eval must be one of rho_evals {cfg.rho_evals}, got {cfg.primary_rho_eval}")
    if any(r <= 0 for r in cfg.rho_evals):
        raise ValueError(f"rho_evals must be > 0, got {cfg.rho_evals}")
    if cfg.record_every < 1 or cfg.num_steps % cfg.record_every:
        raise ValueError(f"record_every must be >= 1 and divide num_steps={cfg.num_steps}, got {cfg.record_every}")
    if not cfg.target_loss > 0:
        raise ValueError(f"target_loss must be > 0, got {cfg.target_loss}")


def grid_shape(cfg: Config) -> tuple[int, int, int, int]:
    """``(widths, train_rhos, learning_rates, noise_rates)``: the leading axes of every per-model array."""
    return len(cfg.widths), len(cfg.train_rhos), len(cfg.learning_rates), len(cfg.noise_rates)


def kendall_tau(x: np.ndarray, y: np.ndarray, *, variant: str = "b") -> float:
    """Kendall's rank correlation over all pairs ``i < j``, from concordant minus discordant pairs.

    ``variant="b"`` (scipy's default): ``(C − D) / √(pairs untied in x · pairs
    untied in y)``, NaN when every pair is tied in ``x`` or in ``y``.
    ``variant="a"`` (Jiang et al. 2019, eq. 3): ``(C − D) / pairs``; a tie
    counts as neither, so it is always defined for two or more points.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"x and y must be 1-D of the same length >= 2, got shapes {x.shape} and {y.shape}")
    if variant not in ("a", "b"):
        raise ValueError(f"variant must be 'a' or 'b', got {variant!r}")
    i, j = np.triu_indices(len(x), k=1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    net = float(np.sum(dx * dy))
    if variant == "a":
        return net / len(i)
    untied_x, untied_y = np.count_nonzero(dx), np.count_nonzero(dy)
    if untied_x == 0 or untied_y == 0:
        return float("nan")
    return net / np.sqrt(float(untied_x) * float(untied_y))


def granulated_tau(measure: np.ndarray, gap: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Jiang et al. (2019) ψ per grid axis: τ_a along that axis, the other axes fixed, averaged over their settings.

    ``measure``, ``gap`` and the boolean ``valid`` (default all true) have
    the grid's shape, every axis of length >= 2. A setting of the other axes
    counts only if every model along the axis is valid; an axis with no such
    setting gets NaN. Ψ, Jiang et al.'s granulated coefficient, is the mean
    of the ψ.
    """
    measure, gap = np.asarray(measure, float), np.asarray(gap, float)
    valid = np.ones(measure.shape, bool) if valid is None else np.asarray(valid, bool)
    if measure.shape != gap.shape or valid.shape != measure.shape or min(measure.shape, default=0) < 2:
        raise ValueError(
            f"measure, gap and valid must share a grid shape with every axis >= 2, got "
            f"{measure.shape}, {gap.shape}, {valid.shape}"
        )
    psi = []
    for axis in range(measure.ndim):
        rows = [np.moveaxis(a, axis, -1).reshape(-1, measure.shape[axis]) for a in (measure, gap, valid)]
        taus = [kendall_tau(m, g, variant="a") for m, g, ok in zip(*rows) if ok.all()]
        psi.append(np.mean(taus) if taus else np.nan)
    return np.asarray(psi)


def load_data(cfg: Config):
    """``(ds, label_sets)``: MNIST-1D and the train labels per noise rate ``(noise, n_train)``. [label-noise]"""
    ds = load_mnist1d(cfg.data_path, num_samples=cfg.num_samples, train_split=cfg.train_split, seed=cfg.data_seed)
    if cfg.eval_size > ds.n_train:
        raise ValueError(f"eval_size must be <= the {ds.n_train} training examples, got {cfg.eval_size}")
    label_sets = np.stack([with_label_noise(ds, rate, cfg.noise_seed).y_train for rate in cfg.noise_rates])
    return ds, label_sets


def _recorded(cfg: Config, x_train, x_test, y_test):
    """Losses and errors at each record, and the parameters, so a model can be taken where it hit the target."""
    loss_fn = mt.classifier_loss(cfg.activation)

    def metrics(params, labels) -> dict:
        return {
            "params": params,
            "train_error": mlp.zero_one_error(params, (x_train, labels), activation=cfg.activation),
            "test_error": mlp.zero_one_error(params, (x_test, y_test), activation=cfg.activation),
            "train_loss": loss_fn(params, (x_train, labels)),
            "test_loss": loss_fn(params, (x_test, y_test)),
        }

    return metrics


def m_sharpness_of_models(cfg: Config, params, x_eval, y_eval, m: int) -> np.ndarray:
    """S_m of each model (leading axis of ``params`` and ``y_eval``) at each ρ_eval: ``(models, rho_evals)``.

    Models are mapped sequentially (``lax.map``): at m = 1 one model's
    per-example perturbations already fill a few hundred MB.
    Conventions: [loss-mean], [rho-sam], [m], [rng].
    """
    loss_fn = mt.classifier_loss(cfg.activation)
    key = jax.random.PRNGKey(cfg.sharpness_seed)
    rho_evals = jnp.asarray(cfg.rho_evals, x_eval.dtype)

    def one_model(args):
        p, y = args
        return jax.lax.map(
            lambda rho: sharpness.m_sharpness(
                loss_fn, p, (x_eval, y), rho, m=m, key=key, steps=cfg.ascent_steps, restarts=cfg.ascent_restarts
            ).sharpness,
            rho_evals,
        )

    return np.asarray(jax.jit(lambda p, y: jax.lax.map(one_model, (p, y)))(params, y_eval))


def stopping_index(train_loss: np.ndarray, target: float) -> tuple[np.ndarray, np.ndarray]:
    """``(index, reached)`` per row of ``train_loss`` ``(..., records)``: the first record at or below ``target``.

    Rows that never reach it get the last record and ``reached = False``.
    """
    below = np.asarray(train_loss) <= target
    reached = below.any(axis=-1)
    return np.where(reached, below.argmax(axis=-1), below.shape[-1] - 1), reached


def run(cfg: Config, progress: Callable[[float], None] | None = None) -> dict:
    _check_config(cfg)
    dtype = mt.float_dtype(cfg.dtype)
    ds, label_sets = load_data(cfg)
    x_train = jnp.asarray(ds.x_train, dtype)
    metrics_fn = _recorded(cfg, x_train, jnp.asarray(ds.x_test, dtype), jnp.asarray(ds.y_test))
    record = np.arange(0, cfg.num_steps + 1, cfg.record_every)
    x_eval = x_train[: cfg.eval_size]
    shape = grid_shape(cfg)
    out: dict = {name: np.zeros(shape) for name in ("train_error", "test_error", "train_loss", "test_loss")}
    out["stop_step"] = np.zeros(shape, np.int64)
    out["reached"] = np.zeros(shape, bool)
    out["sharpness"] = np.zeros(shape + (len(cfg.ms), len(cfg.rho_evals)))
    work = len(cfg.widths) * (1 + len(cfg.ms))
    done = 0
    for w_index, width in enumerate(cfg.widths):
        lanes, _ = mt.lane_grid(
            rho=cfg.train_rhos, learning_rate=cfg.learning_rates, label_index=np.arange(len(cfg.noise_rates)),
            seed=(cfg.seed,),
        )
        result = mt.train_lanes(
            x_train=ds.x_train, label_sets=label_sets, lanes=lanes,
            sizes=(ds.input_shape[0], *([width] * cfg.depth), ds.num_classes), activation=cfg.activation,
            init=cfg.init, dtype=dtype, m=None, num_steps=cfg.num_steps, batch_size=cfg.batch_size,
            momentum=cfg.momentum, record_steps=record, metrics_fn=metrics_fn,
        )
        stop, reached = stopping_index(np.asarray(result.metrics["train_loss"]), cfg.target_loss)
        lane = np.arange(len(stop))
        for name in ("train_error", "test_error", "train_loss", "test_loss"):
            out[name][w_index] = np.asarray(result.metrics[name])[lane, stop].reshape(shape[1:])
        out["stop_step"][w_index] = record[stop].reshape(shape[1:])
        out["reached"][w_index] = reached.reshape(shape[1:])
        params = jax.tree.map(lambda leaf: leaf[lane, stop], result.metrics["params"])
        done += 1
        if progress is not None:
            progress(done / work)
        y_eval = jnp.asarray(label_sets[lanes.label_index, : cfg.eval_size])
        for m_index, m in enumerate(cfg.ms):
            values = m_sharpness_of_models(cfg, params, x_eval, y_eval, m)
            out["sharpness"][w_index, ..., m_index, :] = values.reshape(shape[1:] + (len(cfg.rho_evals),))
            done += 1
            if progress is not None:
                progress(done / work)
    if out["reached"].sum() < 3:
        raise RuntimeError(
            f"only {int(out['reached'].sum())} of {out['reached'].size} models reached target_loss="
            f"{cfg.target_loss}; a rank correlation needs at least 3 (raise num_steps or target_loss)"
        )
    out["error_gap"] = out["test_error"] - out["train_error"]
    out["loss_gap"] = out["test_loss"] - out["train_loss"]
    out.update(correlations(out, cfg))
    return out


def correlations(result: dict, cfg: Config) -> dict:
    """Kendall τ_b (and scipy's two-sided p-value) between S_m and each gap, per (m, ρ_eval); ψ per axis.

    Over the models with ``result["reached"]`` only. Keys: ``tau_<gap>`` and
    ``pvalue_<gap>`` of shape ``(ms, rho_evals)``, ``psi_<gap>`` of shape
    ``(ms, rho_evals, axes)`` (NaN for an axis without a complete setting).
    """
    reached = np.asarray(result["reached"], bool)
    out = {}
    for gap_name in GAPS:
        gap = result[gap_name]
        tau = np.zeros((len(cfg.ms), len(cfg.rho_evals)))
        pvalue = np.zeros_like(tau)
        psi = np.zeros(tau.shape + (len(AXES),))
        for i, j in itertools.product(range(len(cfg.ms)), range(len(cfg.rho_evals))):
            measure = result["sharpness"][..., i, j]
            tau[i, j] = kendall_tau(measure[reached], gap[reached])
            pvalue[i, j] = scipy.stats.kendalltau(measure[reached], gap[reached]).pvalue
            psi[i, j] = granulated_tau(measure, gap, reached)
        out[f"tau_{gap_name}"], out[f"pvalue_{gap_name}"], out[f"psi_{gap_name}"] = tau, pvalue, psi
    return out


def plot(result: dict, cfg: Config) -> Figure:
    fig = Figure(figsize=(13.33, 9), layout="constrained")
    (ax_tau, ax_psi), (ax_small, ax_large) = fig.subplots(2, 2)
    ms = np.asarray(cfg.ms)
    primary = cfg.rho_evals.index(cfg.primary_rho_eval)
    # ρ_eval, the width and Jiang et al.'s axes are not SAM variants: sequential colours, not the variant ones.
    for j, (rho, color) in enumerate(zip(cfg.rho_evals, style.sequential_colors(len(cfg.rho_evals)))):
        for gap_name, ls in (("error_gap", "-"), ("loss_gap", "--")):
            tau, p = result[f"tau_{gap_name}"][:, j], result[f"pvalue_{gap_name}"][:, j]
            ax_tau.plot(ms, tau, ls=ls, color=color, lw=2.5 if j == primary else 1.5,
                        label=f"ρ_eval = {rho:g}, {gap_name.replace('_', ' ')}")
            significant = p < 0.05
            ax_tau.plot(ms[significant], tau[significant], "o", color=color, ms=7)
            ax_tau.plot(ms[~significant], tau[~significant], "o", mfc="white", color=color, ms=7)
    ax_tau.axhline(0, color="gray", lw=0.8)
    reached = np.asarray(result["reached"], bool)
    ax_tau.set(xscale="log", xlabel="m", ylabel="Kendall τ_b (S_m, gap)",
               title=f"(a) rank correlation, {int(reached.sum())} of {reached.size} models\n"
                     "(filled: p < 0.05; solid: error gap, dashed: loss gap)")
    psi = result["psi_error_gap"][:, primary]
    for a, (axis, color) in enumerate(zip(AXES, style.sequential_colors(len(AXES)))):
        missing = " (no complete setting: not drawn)" if np.isnan(psi[:, a]).all() else ""
        ax_psi.plot(ms, psi[:, a], "o-", ms=5, lw=1.5, color=color, label=f"ψ over {axis.replace('_', ' ')}{missing}")
    ax_psi.plot(ms, _mean_psi(psi), "k-", lw=3, label="Ψ (mean of the ψ drawn)")
    ax_psi.axhline(0, color="gray", lw=0.8)
    ax_psi.set(xscale="log", xlabel="m", ylabel="granulated τ_a",
               title=f"(b) Jiang et al.'s granulated τ, error gap,\nρ_eval = {cfg.primary_rho_eval:g}")
    for ax in (ax_tau, ax_psi):
        ax.set_xticks(ms, [str(m) for m in ms])
        ax.xaxis.set_minor_formatter(NullFormatter())
        low, high = ax.get_ylim()
        ax.set_ylim(low - 0.45 * (high - low), high)  # room under the curves for the legend
        ax.legend(loc="lower left", fontsize=10, ncol=2)
    for ax, m_index in ((ax_small, 0), (ax_large, len(cfg.ms) - 1)):
        _scatter(ax, result, cfg, m_index, primary)
    handles, labels = ax_small.get_legend_handles_labels()
    unique = dict(zip(labels, handles))  # "did not reach target" once
    fig.legend(unique.values(), unique.keys(), loc="outside lower center", ncol=4,
               title="(c, d) colour: width; marker: label noise; size: training ρ; ✕: did not reach the target")
    fig.suptitle(
        f"MNIST-1D MLPs, depth {cfg.depth}: widths {list(cfg.widths)} × SAM ρ {list(cfg.train_rhos)} × lr "
        f"{list(cfg.learning_rates)} × label noise {list(cfg.noise_rates)}; SGD + momentum {cfg.momentum:g}, cosine "
        f"over {cfg.num_steps} steps;\neach model at the first step (every {cfg.record_every}) with train "
        f"cross-entropy ≤ {cfg.target_loss:g}; S_m on {cfg.eval_size} train examples, {cfg.ascent_steps} ascent "
        f"steps; {cfg.dtype}",
        fontsize=style.CAPTION_FONTSIZE,
    )
    return fig


def _mean_psi(psi: np.ndarray) -> np.ndarray:
    """Ψ per row: the mean of the finite ψ (NaN only if none is finite)."""
    finite = np.isfinite(psi)
    return np.where(finite.any(-1), np.where(finite, psi, 0).sum(-1) / np.maximum(finite.sum(-1), 1), np.nan)


def _scatter(ax, result: dict, cfg: Config, m_index: int, rho_index: int) -> None:
    """Error gap against S_m; colour = width, marker = noise, size = training ρ; ✕ = did not reach the target."""
    markers = "os^D"
    sizes = np.broadcast_to(np.linspace(25, 110, len(cfg.train_rhos))[:, None], grid_shape(cfg)[1:3]).ravel()
    for (w, width), color in zip(enumerate(cfg.widths), style.sequential_colors(len(cfg.widths))):
        for k, noise in enumerate(cfg.noise_rates):
            s = result["sharpness"][w, :, :, k, m_index, rho_index].ravel()
            g = 100 * result["error_gap"][w, :, :, k].ravel()
            ok = np.asarray(result["reached"][w, :, :, k], bool).ravel()
            ax.scatter(s[ok], g[ok], s=sizes[ok], color=color, marker=markers[k % len(markers)], alpha=0.8,
                       label=f"width {width}, noise {100 * noise:g} %")
            if not ok.all():
                ax.scatter(s[~ok], g[~ok], s=sizes[~ok], color=color, marker="x", label="did not reach target")
    tau = result["tau_error_gap"][m_index, rho_index]
    ax.set(xscale="log", xlabel=f"S_m, m = {cfg.ms[m_index]}, ρ_eval = {cfg.rho_evals[rho_index]:g}",
           ylabel="test error − train error (%)",
           title=f"({'c' if m_index == 0 else 'd'}) m = {cfg.ms[m_index]}: τ = {tau:.2f}")
    style.label_log_axis(ax.xaxis)  # a narrow range: 1, 2, 5 × 10^k so that at least two ticks are labelled


def summary(result: dict, cfg: Config) -> dict[str, float]:
    """At the primary ρ_eval: τ (and p) per m for both gaps, Ψ per m and τ within each noise level (error gap)."""
    j = cfg.rho_evals.index(cfg.primary_rho_eval)
    out: dict[str, float] = {}
    for i, m in enumerate(cfg.ms):
        for gap_name in GAPS:
            out[f"tau_{gap_name}_m{m}"] = float(result[f"tau_{gap_name}"][i, j])
            out[f"pvalue_{gap_name}_m{m}"] = float(result[f"pvalue_{gap_name}"][i, j])
        psi = _mean_psi(result["psi_error_gap"][i, j])
        if np.isfinite(psi):
            out[f"granulated_Psi_error_gap_m{m}"] = float(psi)
    reached = np.asarray(result["reached"], bool)
    for k, noise in enumerate(cfg.noise_rates):
        # Within one noise level: does the trend survive without the noise axis?
        ok = reached[..., k]
        if ok.sum() >= 3:
            for i, m in enumerate(cfg.ms):
                measure = result["sharpness"][..., k, i, j][ok]
                tau = kendall_tau(measure, result["error_gap"][..., k][ok])
                if np.isfinite(tau):
                    out[f"tau_error_gap_m{m}_noise{round(100 * noise)}"] = tau
    out["models_reached_target"] = float(reached.sum())
    out["models"] = float(reached.size)
    out["error_gap_min"] = float(result["error_gap"][reached].min())
    out["error_gap_max"] = float(result["error_gap"][reached].max())
    return out
