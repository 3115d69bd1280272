"""Robustness to label noise: ERM against SAM on MNIST-1D (small-scale Foret et al. 2021, Table 4).

Foret et al. (2021, §3.3) train a ResNet-32 on CIFAR-10 with 20–80 % of the
train labels flipped and report clean test accuracy: SGD 84.8/68.8/48.2/26.2 %,
SAM 95.1/93.4/90.5/77.9 %, with ρ chosen by grid search on a clean validation
split (their App. C.1, Table 9). This figure repeats the protocol on a
problem that runs in minutes on a CPU, and reports what it finds.

Setup (every choice is a :class:`Config` field):

* **Data**: MNIST-1D (Greydanus 2020) generated locally by
  :func:`samtheory.data.load_mnist1d` into ``data_path`` (never downloaded),
  with ``num_samples = 20 000``: 16 000 train and 4 000 test signals. The
  standard 5 000-sample set (4 000 train) is too small for this question:
  an MLP reaches only ≈ 63 % clean test accuracy there and memorizes
  noisy labels within a few epochs; in an exploratory sweep at 40 % noise
  ERM ended at ≈ 31 % and the best SAM run at ≈ 40 %. The last ``validation_size`` train signals (10 %, as in
  Foret et al.) form a clean validation split used only to choose ρ; the
  remaining 14 400 get the label noise.
* **Noise** ([label-noise]): for each rate in ``noise_rates`` and each seed,
  ``with_label_noise(train, rate, noise_seed + seed)``: exactly that fraction
  of train labels moved to a uniformly drawn *other* class. (Foret et al.
  follow Jiang et al. 2019, whose flips may land on the true class; their
  rate r is our r·(1 − 1/10).) Test and validation labels are clean.
* **Model**: :mod:`samtheory.models.mlp` 40→100→100→10, ReLU, He
  initialization, softmax cross-entropy, computed in float32 (``dtype``)
  for speed: the runs are compared with each other, not with float64
  theory, and float32 halves the time.
* **Training**: SGD with momentum 0.9, learning rate 0.05 decayed to 0 by a
  cosine schedule (Foret et al.'s recipe, without weight decay so that only
  the variant differs), minibatches of 100, ``num_steps`` = 4000 (≈ 28
  epochs, for the time budget; a first version with 6000 steps had ERM
  memorize more and fall 1–4 points lower, with both SAM variants above it
  at every noise rate as here). Every variant starts from the same weights
  and sees the same minibatches and the same noisy labels per seed (paired
  comparison).
* **Variants** ([rho-sam], [m], [normalize]): ERM; n-SAM (normalized,
  perturbation from the whole minibatch of 100) with ρ ∈ ``nsam_rhos``;
  m-SAM with chunks of ``msam_m`` = 10 examples, ρ ∈ ``msam_rhos``. The
  grids bracket the radii that a wider exploratory sweep found best;
  m-SAM needs smaller radii (each chunk's gradient is noisier, and the
  radius is per chunk).
* **Choice of ρ**: per noise rate and variant, the ρ with the highest mean
  (over seeds) *final* accuracy on the clean validation split — Foret et
  al.'s rule. Test accuracy never enters the choice.
* **Reported**: clean test accuracy at the end of training (the primary
  number) and the best test accuracy seen over training (an oracle early
  stop, for comparison only: it peeks at the test set); train accuracy on
  the noisy labels and on the clean labels; the fraction of corrupted
  examples fitted to their wrong label (memorization).

Conventions: [loss-mean], [rho-sam], [m], [normalize], [record], [rng],
[float], [data-layout], [label-noise].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax.numpy as jnp
import matplotlib
import numpy as np
from matplotlib.figure import Figure

from experiments import _mlp_training as mt
from samtheory.data import ArrayDataset, load_mnist1d, with_label_noise
from samtheory.models import mlp

NAME = "label_noise"
TITLE = "Label noise on MNIST-1D: clean test accuracy of ERM, n-SAM and m-SAM (small-scale Foret et al. Table 4)"
CAPTION = "n-SAM and m-SAM keep a higher clean test accuracy than ERM at every label-noise rate at this training length (at 60 % noise 0.46 and 0.45 against 0.39)."
CODE_VERSION = 0

#: Metrics recorded along training, each ``(..., records)``.
METRICS = (
    "test_accuracy", "val_accuracy", "train_loss", "train_accuracy", "train_accuracy_clean",
    "corrupted_fit_noisy", "corrupted_fit_clean", "uncorrupted_fit",
)


@dataclasses.dataclass(frozen=True)
class Config:
    data_path: str = ".cache/samtheory/data/mnist1d_n20000_seed42.npz"
    num_samples: int = 20000
    train_split: float = 0.8
    data_seed: int = 42
    validation_size: int = 1600
    noise_rates: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8)
    noise_seed: int = 0
    hidden: tuple[int, ...] = (100, 100)
    activation: str = "relu"
    init: str = "he"
    dtype: str = "float32"
    learning_rate: float = 0.05
    momentum: float = 0.9
    batch_size: int = 100
    num_steps: int = 4000
    num_records: int = 21
    nsam_rhos: tuple[float, ...] = (0.1, 0.2, 0.5)
    msam_m: int = 10
    msam_rhos: tuple[float, ...] = (0.05, 0.1)
    seeds: tuple[int, ...] = (0, 1, 2)
    #: The noise rate whose training curves panels (b) and (c) show.
    curve_noise_rate: float = 0.6


def config(quick: bool) -> Config:
    if quick:
        return Config(
            data_path=".cache/samtheory/data/mnist1d_n5000_seed42.pkl", num_samples=5000, validation_size=400,
            noise_rates=(0.0, 0.4), hidden=(32,), num_steps=150, num_records=4, nsam_rhos=(0.1,),
            msam_rhos=(0.05,), seeds=(0, 1), curve_noise_rate=0.4,
        )
    return Config()


def _check_config(cfg: Config) -> None:
    if not cfg.noise_rates or not cfg.seeds or not cfg.nsam_rhos or not cfg.msam_rhos:
        raise ValueError("noise_rates, seeds, nsam_rhos and msam_rhos must not be empty")
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise ValueError(f"seeds must be distinct, got {cfg.seeds}")
    if cfg.curve_noise_rate not in cfg.noise_rates or cfg.curve_noise_rate <= 0:
        raise ValueError(
            f"curve_noise_rate must be one of the positive noise_rates {cfg.noise_rates}, got {cfg.curve_noise_rate}"
        )
    if any(r <= 0 for r in cfg.nsam_rhos + cfg.msam_rhos):
        raise ValueError("nsam_rhos and msam_rhos must be > 0 (ERM is the rho = 0 lane, added by run)")
    if cfg.batch_size % cfg.msam_m:
        raise ValueError(f"msam_m={cfg.msam_m} must divide batch_size={cfg.batch_size}")
    if cfg.num_records < 2:
        raise ValueError(f"num_records must be >= 2, got {cfg.num_records}")


def hold_out_validation(ds: ArrayDataset, size: int) -> tuple[ArrayDataset, tuple[np.ndarray, np.ndarray]]:
    """``(train, (x_val, y_val))``: the last ``size`` train examples become a clean validation split.

    The validation split is taken before any label noise, so its labels are
    clean ([label-noise]); the returned train set records the hold-out in
    ``info["transforms"]``. Raises ``ValueError`` naming ``size`` unless
    ``0 < size < n_train``, and ``ds`` if it already has label noise.
    """
    if ds.clean_y_train is not None:
        raise ValueError("ds already has label noise; hold out the validation split from the clean data set")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size < ds.n_train:
        raise ValueError(f"size must be an integer in (0, {ds.n_train}), got {size!r}")
    keep = ds.n_train - size
    info = dict(ds.info)
    info["transforms"] = [*ds.info.get("transforms", []), {"transform": "hold_out_validation", "last": size}]
    train = ArrayDataset(ds.x_train[:keep], ds.y_train[:keep], ds.x_test, ds.y_test, ds.num_classes,
                         name=f"{ds.name}-minus{size}val", info=info)
    return train, (ds.x_train[keep:], ds.y_train[keep:])


def load_data(cfg: Config):
    """``(train, (x_val, y_val), label_sets, realized)`` with ``label_sets[noise, seed]`` the noisy train labels.

    ``realized[noise, seed]`` is the fraction of train labels that differ
    from the clean ones. Conventions: [data-layout], [label-noise].
    """
    ds = load_mnist1d(cfg.data_path, num_samples=cfg.num_samples, train_split=cfg.train_split, seed=cfg.data_seed)
    train, validation = hold_out_validation(ds, cfg.validation_size)
    noisy = [[with_label_noise(train, rate, cfg.noise_seed + seed) for seed in cfg.seeds] for rate in cfg.noise_rates]
    label_sets = np.stack([[d.y_train for d in row] for row in noisy])
    realized = np.mean(label_sets != train.y_train, axis=-1)
    return train, validation, label_sets, realized


def _metrics_fn(cfg: Config, x_train, clean_labels, x_val, y_val, x_test, y_test):
    loss_fn = mt.classifier_loss(cfg.activation)

    def metrics(params, labels) -> dict:
        predicted = jnp.argmax(mlp.predict(params, x_train, activation=cfg.activation), axis=-1)
        corrupted = labels != clean_labels
        # Counts, not fractions: a noise-free set has no corrupted example to divide by.
        return {
            "test_accuracy": mlp.accuracy(params, (x_test, y_test), activation=cfg.activation),
            "val_accuracy": mlp.accuracy(params, (x_val, y_val), activation=cfg.activation),
            "train_loss": loss_fn(params, (x_train, labels)),
            "train_accuracy": mlp.accuracy(params, (x_train, labels), activation=cfg.activation),
            "train_accuracy_clean": mlp.accuracy(params, (x_train, clean_labels), activation=cfg.activation),
            "corrupted_fit_noisy": jnp.sum(corrupted & (predicted == labels)),
            "corrupted_fit_clean": jnp.sum(corrupted & (predicted == clean_labels)),
            "uncorrupted_fit": jnp.sum(~corrupted & (predicted == labels)),
        }

    return metrics


def record_steps(cfg: Config) -> np.ndarray:
    """``num_records`` evenly spaced steps from 0 to ``num_steps`` (test accuracy is read on a linear axis). [record]"""
    return np.unique(np.linspace(0, cfg.num_steps, cfg.num_records).round().astype(np.int64))


def run(cfg: Config, progress: Callable[[float], None] | None = None) -> dict:
    _check_config(cfg)
    dtype = mt.float_dtype(cfg.dtype)
    train, (x_val, y_val), label_sets, realized = load_data(cfg)
    num_noise, num_seeds = label_sets.shape[:2]
    x_train = jnp.asarray(train.x_train, dtype)
    metrics_fn = _metrics_fn(
        cfg, x_train, jnp.asarray(train.y_train), jnp.asarray(x_val, dtype), jnp.asarray(y_val),
        jnp.asarray(train.x_test, dtype), jnp.asarray(train.y_test),
    )
    steps = record_steps(cfg)
    sizes = (train.input_shape[0], *cfg.hidden, train.num_classes)
    out: dict = {"steps": steps, "realized_noise": realized, "n_train": train.n_train, "n_test": train.n_test}
    groups = [("nsam", None, (0.0, *cfg.nsam_rhos)), ("msam", cfg.msam_m, cfg.msam_rhos)]
    for i, (name, m, rhos) in enumerate(groups):
        lanes, shape = mt.lane_grid(
            rho=rhos, learning_rate=(cfg.learning_rate,), label_index=np.arange(num_noise * num_seeds), seed=(0,)
        )
        # Seed s fits its own noise draw: label set (noise, s) goes with seed s.
        lanes = lanes._replace(seed=np.asarray(cfg.seeds)[lanes.label_index % num_seeds])
        result = mt.train_lanes(
            x_train=train.x_train, label_sets=label_sets.reshape(num_noise * num_seeds, -1), lanes=lanes,
            sizes=sizes, activation=cfg.activation, init=cfg.init, dtype=dtype, m=m, num_steps=cfg.num_steps,
            batch_size=cfg.batch_size, momentum=cfg.momentum, record_steps=steps, metrics_fn=metrics_fn,
        )
        for metric in METRICS:
            values = np.asarray(result.metrics[metric]).reshape(len(rhos), num_noise, num_seeds, len(steps))
            if name == "nsam":
                out[f"erm_{metric}"], values = values[0], values[1:]
            out[f"{name}_{metric}"] = values
        if progress is not None:
            progress((i + 1) / len(groups))
    for name in ("nsam", "msam"):
        # Foret et al.'s rule: mean final clean-validation accuracy over seeds, per noise rate.
        out[f"{name}_chosen"] = np.argmax(out[f"{name}_val_accuracy"][..., -1].mean(axis=-1), axis=0)
    return out


def rhos_of(name: str, cfg: Config) -> tuple[float, ...]:
    return cfg.nsam_rhos if name == "nsam" else cfg.msam_rhos


def chosen(result: dict, name: str, metric: str) -> np.ndarray:
    """``metric`` of variant ``name`` at its validation-chosen ρ per noise rate, ``(noise, seed, records)``.

    ``name`` is ``"erm"``, ``"nsam"`` or ``"msam"``.
    """
    values = result[f"{name}_{metric}"]
    if name == "erm":
        return values
    index = result[f"{name}_chosen"]
    return np.stack([values[r, i] for i, r in enumerate(index)])


def memorized_fraction(result: dict, name: str, cfg: Config) -> np.ndarray:
    """Fraction of the corrupted train examples predicted as their (wrong) label, ``(noise, seed, records)``.

    NaN at noise 0, where no example is corrupted. Conventions: [label-noise].
    """
    corrupted = (result["realized_noise"] * result["n_train"])[..., None]
    fitted = chosen(result, name, "corrupted_fit_noisy")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(corrupted > 0, fitted / corrupted, np.nan)


_STYLE = {"erm": ("ERM (SGD)", "C0"), "nsam": ("n-SAM", "C3"), "msam": ("m-SAM", "C2")}


def _label(name: str, cfg: Config) -> str:
    text, _ = _STYLE[name]
    return f"m-SAM (m = {cfg.msam_m})" if name == "msam" else text


def plot(result: dict, cfg: Config) -> Figure:
    fig = Figure(figsize=(13, 8.5), layout="constrained")
    (ax_final, ax_curve), (ax_mem, ax_rho) = fig.subplots(2, 2)
    noise = 100 * np.asarray(cfg.noise_rates)
    epochs = result["steps"] * cfg.batch_size / result["n_train"]
    curve = cfg.noise_rates.index(cfg.curve_noise_rate)
    for name in ("erm", "nsam", "msam"):
        label, color = _label(name, cfg), _STYLE[name][1]
        acc = chosen(result, name, "test_accuracy")
        final, best = 100 * acc[..., -1], 100 * acc.max(axis=-1)
        ax_final.errorbar(noise, final.mean(-1), yerr=[final.mean(-1) - final.min(-1), final.max(-1) - final.mean(-1)],
                          fmt="o-", color=color, capsize=3, label=f"{label}: final")
        ax_final.plot(noise, best.mean(-1), "^:", color=color, alpha=0.6, label=f"{label}: best over training")
        _band(ax_curve, epochs, 100 * acc[curve], color, f"{label} test (clean)")
        _band(ax_curve, epochs, 100 * chosen(result, name, "train_accuracy_clean")[curve], color, None, ls="--")
        _band(ax_mem, epochs, 100 * memorized_fraction(result, name, cfg)[curve], color, label)
        _band(ax_mem, epochs, 100 * chosen(result, name, "train_accuracy")[curve], color, None, ls=":")
    shades = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(cfg.noise_rates)))
    for i, (rate, color) in enumerate(zip(cfg.noise_rates, shades)):
        erm = 100 * result["erm_test_accuracy"][i, :, -1].mean()
        for name, ls, marker in (("nsam", "-", "o"), ("msam", "--", "s")):
            rhos = np.asarray((0.0, *rhos_of(name, cfg)))
            acc = np.concatenate([[erm], 100 * result[f"{name}_test_accuracy"][:, i, :, -1].mean(-1)])
            ax_rho.plot(np.maximum(rhos, 0.01), acc, ls=ls, marker=marker, ms=3, color=color,
                        label=f"{100 * rate:g} % noise" if name == "nsam" else None)
            pick = int(result[f"{name}_chosen"][i]) + 1
            ax_rho.plot(max(rhos[pick], 0.01), acc[pick], marker="*", ms=12, color=color, mec="k")
    ax_final.set(xlabel="label noise (%)", ylabel="clean test accuracy (%)", xticks=noise,
                 title="(a) test accuracy at the end of training (ρ chosen on clean validation)")
    ax_curve.set(xlabel="epoch", ylabel="accuracy (%)",
                 title=f"(b) {100 * cfg.curve_noise_rate:g} % noise: test (solid), train w.r.t. clean labels (dashed)")
    ax_mem.set(xlabel="epoch", ylabel="%",
               title=f"(c) {100 * cfg.curve_noise_rate:g} % noise: corrupted labels fitted (solid), "
                     "train acc. (dotted)")
    ax_rho.set(xscale="log", xlabel="ρ (ERM drawn at 0.01)", ylabel="final clean test accuracy (%)",
               title="(d) final test accuracy vs ρ: n-SAM (solid), m-SAM (dashed), ★ chosen")
    for ax in (ax_final, ax_curve, ax_mem, ax_rho):
        ax.legend(fontsize=7)
    fig.suptitle(
        f"MLP 40→{'→'.join(map(str, cfg.hidden))}→10 on MNIST-1D: {int(result['n_train'])} noisy train, "
        f"{cfg.validation_size} clean validation, {int(result['n_test'])} clean test signals; "
        f"{len(cfg.seeds)} seeds (mean, min–max); {cfg.dtype}\n"
        f"SGD + momentum {cfg.momentum:g}, lr {cfg.learning_rate:g} with cosine decay, batch {cfg.batch_size}, "
        f"{cfg.num_steps} steps; n-SAM ρ ∈ {list(cfg.nsam_rhos)}, m-SAM (m = {cfg.msam_m}) "
        f"ρ ∈ {list(cfg.msam_rhos)}, ρ chosen per noise rate by final clean-validation accuracy",
        fontsize=9,
    )
    return fig


def _band(ax, x, y, color, label, ls="-"):
    """Mean over seeds (axis 0) with a min–max band."""
    ax.plot(x, y.mean(0), color=color, ls=ls, label=label)
    ax.fill_between(x, y.min(0), y.max(0), color=color, alpha=0.15, lw=0)


def summary(result: dict, cfg: Config) -> dict[str, float]:
    """Final (primary) and best-over-training test accuracy per (variant, noise), with the chosen ρ."""
    out: dict[str, float] = {}
    for name in ("erm", "nsam", "msam"):
        acc = chosen(result, name, "test_accuracy")
        for i, rate in enumerate(cfg.noise_rates):
            tag = f"{name}_noise{round(100 * rate)}"
            out[f"{tag}_final_test_acc_mean"] = float(acc[i, :, -1].mean())
            out[f"{tag}_final_test_acc_std"] = float(acc[i, :, -1].std(ddof=1)) if acc.shape[1] > 1 else 0.0
            out[f"{tag}_best_over_training_test_acc_mean"] = float(acc[i].max(axis=-1).mean())
            train_acc = chosen(result, name, "train_accuracy")[i, :, -1]
            out[f"{tag}_final_train_acc_noisy_labels_mean"] = float(train_acc.mean())
            if name != "erm":
                out[f"{tag}_chosen_rho"] = float(rhos_of(name, cfg)[int(result[f"{name}_chosen"][i])])
    return out
