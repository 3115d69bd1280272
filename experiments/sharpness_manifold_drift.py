"""Which sharpness each SAM variant minimizes along a manifold of minimizers (Wen, Ma & Li 2023).

Toy loss with per-example terms ``ℓ₁ = 2F₁(x₁,x₂)x₃²``, ``ℓ₂ = 2F₂(x₁,x₂)x₄²``,
so ``L = F₁x₃² + F₂x₄²`` ([loss-mean]) and the minimizers are the plane
``x₃ = x₄ = 0``, where the Hessian is ``diag(0, 0, 2F₁, 2F₂)``. With

    F₂ = 1 + x₁² + x₂²,   F₁ = F₂ + 1 + (x₁ − 2)² + (x₂ − 1)²   (F₁ > F₂ > 0),

the candidate biases have distinct minimizers on the plane:

* λ₁ = 2F₁ (worst-direction loss; full-batch normalized SAM): (1, 1/2);
* Tr = 2(F₁ + F₂) (average-direction / 1-SAM): (2/3, 1/3);
* the smallest nonzero eigenvalue 2F₂ (ascent-direction loss): (0, 0).

Each variant runs full-batch normalized SAM with step η and radius ρ from the
same start; the figure shows the paths of (x₁, x₂) over contours of the three
objectives, and the end points against the predictions. The ascent-direction
loss is run as SAM with the second-order term (``second_order=True``), i.e.
gradient descent on ``L^Asc``, at step sizes 4× apart, each for the same time
η·steps.

Which theorem covers which panel, and in which regime.

* Panels (a) and (b) are Wen, Ma & Li's (2023) dynamics theorems: full-batch
  normalized SAM tracks a Riemannian gradient flow of λ₁ on the manifold,
  stochastic 1-SAM one of the trace, both as η, ρ → 0, the drift along the
  manifold happening over Θ(1/(ηρ²)) steps. Here η·steps = 2000 at
  ρ = 0.1, i.e. 20 times that time scale (1/ρ² = 100 in η·steps). What we
  could not check from the text at hand: the exact smallness conditions
  their full-batch theorem puts on η against ρ (we ran one (η, ρ) pair, and
  both runs do end at their predictions).
* The λ_min statement about the ascent-direction loss (their limiting
  regularizer of ``L^Asc``, the module's Thm E.4 reference) is **not a
  dynamics theorem**: it is the limit as ρ → 0 of the *infimum* of
  ``(L^Asc − L)/ρ²`` over a vanishing neighbourhood of the manifold,
  approached along the flattest nonzero direction. It has no step size and
  no time scale; no theorem we know of says what gradient descent on
  ``L^Asc`` converges to. Panels (c)–(d) therefore lie **outside any
  theorem's regime**: they are an experiment, not a check. (The horizon is
  not the issue: each ascent run lasts η·steps = ``ascent_time`` = 1000,
  ten times the Θ(1/(ηρ²)) drift time.)

What the ascent-direction runs show, and only at the four step sizes run.
Gradient descent on ``L^Asc`` settles into a 2-cycle off the manifold whose
ascent direction mixes the top and bottom eigenvectors (its curvature near
the manifold grows like ρ/distance, so a fixed step cannot approach it), and
the end point on the plane is the argmin of a mix ``aF₁ + bF₂`` (on the
segment from (0, 0) to (1, ½)). Over η from 8·10⁻³ down to 1.25·10⁻⁴ the
mix moves toward ``F₂`` and the distance to argmin 2F₂ = (0, 0) shrinks with
the fitted log-log slope of panel (d). Whether it reaches (0, 0) as η → 0 is
an extrapolation from four step sizes, not shown here.

Conventions: [loss-mean], [rho-sam], [m], [normalize].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import matplotlib
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from samtheory import sam, train
from samtheory.style import VARIANT_COLORS

NAME = "sharpness_manifold_drift"
TITLE = "Implicit biases along a manifold of minimizers: n-SAM (lambda_max), 1-SAM (trace), ascent-direction"
CAPTION = ("Along a manifold of minimizers n-SAM drifts to argmin λ₁ and 1-SAM to argmin trace, as Wen, Ma & Li prove; "
           "GD on the ascent-direction loss ends nearer argmin λ_min as η shrinks, outside any theorem.")
CODE_VERSION = 3

PREDICTIONS = {"lambda_max": (1.0, 0.5), "trace": (2.0 / 3.0, 1.0 / 3.0), "lambda_min": (0.0, 0.0)}


@dataclasses.dataclass(frozen=True)
class Config:
    rho: float = 0.1
    step_size: float = 0.01
    ascent_step_sizes: tuple[float, ...] = (0.008, 0.002, 0.0005, 0.000125)
    #: η·steps of each ascent-direction run (long enough for every η to settle).
    ascent_time: float = 1000.0
    num_steps: int = 200_000
    start: tuple[float, ...] = (-1.0, 1.5, 0.1, 0.1)


def config(quick: bool) -> Config:
    if quick:
        return Config(num_steps=5_000, ascent_step_sizes=(0.008, 0.002), ascent_time=40.0)
    return Config()


def f2(x):
    return 1 + x[0] ** 2 + x[1] ** 2


def f1(x):
    return f2(x) + 1 + (x[0] - 2) ** 2 + (x[1] - 1) ** 2


def loss_fn(params, batch):
    """Mean over the two examples; ``batch["select"]`` rows pick ℓ₁ or ℓ₂. Conventions: [loss-mean]."""
    x = params["x"]
    per_example = jnp.stack([2 * f1(x) * x[2] ** 2, 2 * f2(x) * x[3] ** 2])
    return jnp.mean(batch["select"] @ per_example)


def run(cfg: Config, progress: Callable[[float], None] | None = None) -> dict:
    data = {"select": jnp.eye(2)}
    start = {"x": jnp.asarray(cfg.start)}
    record = train.log_steps(cfg.num_steps, 80)
    runs = {
        "n_sam": (sam.SAM(cfg.rho), cfg.step_size, cfg.num_steps),
        "one_sam": (sam.SAM(cfg.rho, m=1), cfg.step_size, cfg.num_steps),
    }
    for i, eta in enumerate(cfg.ascent_step_sizes):
        runs[f"ascent_{i}"] = (sam.SAM(cfg.rho, second_order=True), eta, round(cfg.ascent_time / eta))
    out: dict = {"steps": record, "ascent_step_sizes": np.asarray(cfg.ascent_step_sizes)}
    for j, (name, (variant, eta, num_steps)) in enumerate(runs.items()):
        steps = train.log_steps(num_steps, 80)
        result = jax.jit(lambda: train.run(loss_fn, start, data, variant=variant, num_steps=num_steps,
                                           learning_rate=eta, record_steps=steps,
                                           metrics_fn=lambda p: {"x": p["x"]}))()
        out[f"{name}_path"] = np.asarray(train.check_finite(result).metrics["x"])
        out[f"{name}_steps"] = steps
        if progress is not None:
            progress((j + 1) / len(runs))
    return out


def plot(result: dict, cfg: Config) -> Figure:
    fig = Figure(figsize=(16, 4), layout="constrained")
    axes = fig.subplots(1, 4)
    grid1, grid2 = np.meshgrid(np.linspace(-1.3, 2.2, 200), np.linspace(-0.5, 1.8, 200))
    fields = {"lambda_max": 2 * f1((grid1, grid2)), "trace": 2 * (f1((grid1, grid2)) + f2((grid1, grid2))),
              "lambda_min": 2 * f2((grid1, grid2))}
    panels = [
        ("lambda_max", "n_sam", r"(a) n-SAM vs argmin $\lambda_1 = 2F_1$", ["n_sam"]),
        ("trace", "one_sam", r"(b) 1-SAM vs argmin Tr $= 2(F_1+F_2)$", ["one_sam"]),
        ("lambda_min", "ascent", r"(c) GD on $L^{Asc}$ vs argmin $2F_2$", [k for k in result if k.startswith("ascent_") and k.endswith("_path")]),
    ]
    for ax, (field, _, title, keys) in zip(axes[:3], panels):
        ax.contour(grid1, grid2, fields[field], levels=15, cmap="Greys", linewidths=0.6)
        for key in keys:
            key = key if key.endswith("_path") else f"{key}_path"
            path = result[key]
            label = key.replace("_path", "")
            if label.startswith("ascent_"):
                # Step sizes, not variants: a sequential map, darker = smaller η.
                i = int(label.split("_")[1])
                color = matplotlib.colormaps["Oranges"](0.35 + 0.6 * i / max(1, len(result["ascent_step_sizes"]) - 1))
                label = f"η = {result['ascent_step_sizes'][i]:g}"
            else:
                color = VARIANT_COLORS[label]
                label = f"η = {cfg.step_size:g}"
            ax.plot(path[:, 0], path[:, 1], "-", lw=1.2, color=color, label=label)
            ax.plot(path[-1, 0], path[-1, 1], "o", ms=5, color=ax.lines[-1].get_color())
        px, py = PREDICTIONS[field]
        ax.plot(px, py, "r*", ms=12, label="predicted minimizer")
        ax.set(xlabel="$x_1$", ylabel="$x_2$", title=title)
        ax.legend(fontsize=7)
    etas, distances, offsets = _ascent_end_points(result)
    ax = axes[3]
    ax.loglog(etas, distances, "o-", color=matplotlib.colormaps["Oranges"](0.8), label="end point to argmin $2F_2$ (on the plane)")
    ax.loglog(etas, offsets, "s--", color="0.45", label=r"distance off the manifold $\|(x_3, x_4)\|$")
    slope = ascent_distance_slope(result)
    ax.set(xlabel="step size η", ylabel="distance",
           title=f"(d) {len(etas)} step sizes only (slope {slope:.2f})")
    ax.legend(fontsize=7)
    # Minor-tick labels on a decade-wide log axis overlap; label the measured η instead.
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(etas, [f"{eta:g}" for eta in etas])
    # A log axis needs more than one labelled tick: label round values across the measured range.
    values = np.concatenate([distances, offsets])
    yticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0) if values.min() / 1.5 <= t <= values.max() * 1.5]
    ax.set_yticks(yticks, [f"{t:g}" for t in yticks])
    fig.suptitle(f"normalized SAM, ρ = {cfg.rho:g}, {cfg.num_steps} steps, start (x₁, x₂) = "
                 f"({cfg.start[0]:g}, {cfg.start[1]:g}). (a), (b): Wen–Ma–Li's theorems; (c), (d): outside any "
                 f"theorem's regime (their λ_min result is about the infimum of $L^{{Asc}}$, not about GD on it)",
                 fontsize=9)
    return fig


def _ascent_end_points(result: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(η, distance of the end point to argmin 2F₂ on the plane, distance off the plane) per ascent run."""
    etas = np.asarray(result["ascent_step_sizes"], dtype=float)
    ends = np.stack([result[f"ascent_{i}_path"][-1] for i in range(len(etas))])
    distances = np.linalg.norm(ends[:, :2] - np.asarray(PREDICTIONS["lambda_min"]), axis=1)
    return etas, distances, np.linalg.norm(ends[:, 2:], axis=1)


def ascent_distance_slope(result: dict) -> float:
    """Least-squares slope of log(distance to argmin 2F₂) against log η over the ascent runs."""
    etas, distances, _ = _ascent_end_points(result)
    return float(np.polyfit(np.log(etas), np.log(distances), 1)[0])


def summary(result: dict, cfg: Config) -> dict[str, float]:
    out = {}
    for key, field in (("n_sam", "lambda_max"), ("one_sam", "trace")):
        end = result[f"{key}_path"][-1, :2]
        out[f"{key}_distance_to_predicted"] = float(np.linalg.norm(end - np.asarray(PREDICTIONS[field])))
    for i, eta in enumerate(result["ascent_step_sizes"]):
        end = result[f"ascent_{i}_path"][-1, :2]
        out[f"ascent_eta_{eta:g}_distance_to_predicted"] = float(np.linalg.norm(end - np.asarray(PREDICTIONS["lambda_min"])))
        out[f"ascent_eta_{eta:g}_end_x1"] = float(end[0])
        out[f"ascent_eta_{eta:g}_end_x2"] = float(end[1])
    out["ascent_distance_vs_eta_slope"] = ascent_distance_slope(result)
    return out
