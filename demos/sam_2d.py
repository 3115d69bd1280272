import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="SAM in two dimensions")


@app.cell
def _():
    import jax
    import jax.numpy as jnp
    import marimo as mo
    import numpy as np

    from samtheory import demo_support as common, sam, train
    return common, jax, jnp, mo, np, sam, train


@app.cell
def _(mo):
    mo.md(r"""
    # SAM in two dimensions

    A loss with a **sharp** minimum at $A=(-1, 0)$ (curvature 20) and a **flat** one at $B=(1, 0.5)$
    (curvature 1, loss 0.05 higher), joined by a smooth minimum of the two wells. Full-batch GD, SAM
    (normalized, $\varepsilon = \rho\,\nabla L/\|\nabla L\|$) and USAM ($\varepsilon = \rho\,\nabla L$) run
    150 steps from the same start with `samtheory.train.run`. Each arrow is the ascent step
    $\varepsilon$ taken at that iterate (`SAM.perturbation`): the gradient is then evaluated at its tip.
    At the default start GD stays in the sharp minimum and both SAMs reach the flat one. Move the start
    or ρ: from most starts near the sharp well, SAM leaves the sharp minimum (its 2-cycle there has
    radius ηρλ/(2 − ηλ)) but stalls on the ridge between the wells, where the ascent step points back
    over the ridge. The escape is fragile, not a law. Conventions: [rho-sam], [normalize].
    """)
    return


@app.cell
def _(common, jax, jnp, np, sam, train):
    SHARP, FLAT = jnp.array([-1.0, 0.0]), jnp.array([1.0, 0.5])
    NUM_STEPS = 150
    DATA = {"example": jnp.zeros((1,))}  # the loss has no data; the engine wants one example axis

    def loss_2d(w, batch=None):
        """A smooth minimum of a sharp well (curvature 20) and a flat one (curvature 1, +0.05)."""
        sharp = 10.0 * jnp.sum((w - SHARP) ** 2)
        flat = 0.5 * jnp.sum((w - FLAT) ** 2) + 0.05
        return -0.25 * jnp.logaddexp(-sharp / 0.25, -flat / 0.25)

    def _variants(rho_sam, rho_usam):
        return {"erm": sam.ERM(), "n_sam": sam.SAM(rho_sam), "usam": sam.SAM(rho_usam, normalize=False)}

    def trajectories(w0, eta, rho_sam, rho_usam):
        """Every iterate of GD, SAM and USAM, the ascent step at each, and the losses."""
        out = {}
        for key, variant in _variants(rho_sam, rho_usam).items():
            result = train.run(
                loss_2d, w0, DATA, variant=variant, num_steps=NUM_STEPS, learning_rate=eta,
                record_steps=np.arange(NUM_STEPS + 1), metrics_fn=lambda p: {"w": p, "loss": loss_2d(p)},
            )
            path = result.metrics["w"]
            if key == "erm":
                eps = jnp.zeros_like(path)
            else:
                eps = jax.vmap(lambda w: sam.chunk_perturbation(variant, loss_2d, w, DATA))(path)
            out[key] = {"path": path, "eps": eps, "loss": result.metrics["loss"], "diverged": result.diverged_step}
        return out

    DEFAULTS = dict(w0=(-0.95, -0.6), eta=0.05, rho_sam=0.2, rho_usam=0.05)
    compute_2d = common.compile_once(
        trajectories, jnp.array(DEFAULTS["w0"]), DEFAULTS["eta"], DEFAULTS["rho_sam"], DEFAULTS["rho_usam"]
    )
    _g = np.linspace(-2.0, 2.2, 121), np.linspace(-1.4, 1.8, 91)
    GRID = np.meshgrid(*_g)
    GRID_LOSS = np.asarray(jax.vmap(jax.vmap(loss_2d))(jnp.stack(GRID, -1)))
    return DEFAULTS, FLAT, GRID, GRID_LOSS, NUM_STEPS, SHARP, compute_2d, loss_2d


@app.cell
def _(DEFAULTS, mo):
    eta_slider = mo.ui.slider(0.005, 0.09, step=0.005, value=DEFAULTS["eta"], label="step size η", show_value=True)
    rho_sam_slider = mo.ui.slider(0.0, 0.5, step=0.02, value=DEFAULTS["rho_sam"], label="SAM radius ρ", show_value=True)
    rho_usam_slider = mo.ui.slider(0.0, 0.2, step=0.01, value=DEFAULTS["rho_usam"], label="USAM ascent step ρ", show_value=True)
    x0_slider = mo.ui.slider(-1.9, 2.0, step=0.05, value=DEFAULTS["w0"][0], label="start x", show_value=True)
    y0_slider = mo.ui.slider(-1.3, 1.7, step=0.05, value=DEFAULTS["w0"][1], label="start y", show_value=True)
    mo.hstack([mo.vstack([eta_slider, rho_sam_slider, rho_usam_slider]), mo.vstack([x0_slider, y0_slider])])
    return eta_slider, rho_sam_slider, rho_usam_slider, x0_slider, y0_slider


@app.cell
def _(FLAT, GRID, GRID_LOSS, NUM_STEPS, SHARP, common, compute_2d, jnp, mo, np):
    timer_2d = common.timer()

    @timer_2d
    def update_2d(x0, y0, eta, rho_sam, rho_usam):
        """One interaction: the three runs (compiled once) and the picture."""
        runs = {k: {n: np.asarray(a) for n, a in v.items()}
                for k, v in compute_2d(jnp.array([x0, y0]), eta, rho_sam, rho_usam).items()}
        fig, (ax, ax_loss) = common.figure(12.5, 4.6, ncols=2)
        ax.contour(*GRID, GRID_LOSS, levels=np.linspace(0, 1.6, 17), colors="0.75", linewidths=0.8)
        ax.plot(*SHARP, "x", color="0.3", ms=9)
        ax.plot(*FLAT, "x", color="0.3", ms=9)
        ax.annotate("sharp", SHARP, xytext=(4, 6), textcoords="offset points", fontsize=10)
        ax.annotate("flat", FLAT, xytext=(4, 6), textcoords="offset points", fontsize=10)
        labels = {"erm": "GD", "n_sam": f"SAM, ρ = {rho_sam:g}", "usam": f"USAM, ρ = {rho_usam:g}"}
        where = {}
        for key, run in runs.items():
            color = common.VARIANT_COLORS[key]
            path, eps = run["path"], run["eps"]
            finite = np.all(np.isfinite(path), axis=1)
            ax.plot(path[finite, 0], path[finite, 1], "o-", ms=2.5, lw=1.2, color=color, label=labels[key])
            if key != "erm":
                ax.quiver(path[finite, 0], path[finite, 1], eps[finite, 0], eps[finite, 1], color=color,
                          angles="xy", scale_units="xy", scale=1, width=0.003, alpha=0.6)
            end = path[finite][-1]
            where[key] = ("diverged" if run["diverged"] >= 0 else
                          "sharp" if np.linalg.norm(end - np.asarray(SHARP)) < 0.3 else
                          "flat" if np.linalg.norm(end - np.asarray(FLAT)) < 0.3 else "neither")
            ax_loss.plot(np.arange(NUM_STEPS + 1)[finite], run["loss"][finite], color=color, label=labels[key])
        ax.set(xlim=(-2.0, 2.2), ylim=(-1.4, 1.8), xlabel="$w_1$", ylabel="$w_2$", aspect="equal",
               title="iterates and ascent steps ε")
        ax.legend(loc="upper left", fontsize=9)
        ax_loss.set(xlabel="step", ylabel="loss L(w)", title="loss along the run")
        ax_loss.axhline(0.05, color="0.6", lw=0.8, ls=":")
        ax_loss.annotate("flat minimum", (NUM_STEPS, 0.05), xytext=(-80, 5), textcoords="offset points", fontsize=9)
        finals = {k: float(r["loss"][-1]) for k, r in runs.items()}
        lengths = {k: float(np.nansum(np.linalg.norm(np.diff(r["path"], axis=0), axis=1))) for k, r in runs.items()}
        text = " · ".join(f"**{labels[k].split(',')[0]}** ends at the {where[k]} minimum (loss {finals[k]:.4f}, "
                          f"path length {lengths[k]:.4f})" for k in runs)
        return mo.vstack([mo.md(common.readout(text)), common.show(fig, alt="SAM in 2-D")]), runs, where
    return timer_2d, update_2d


@app.cell
def _(eta_slider, rho_sam_slider, rho_usam_slider, update_2d, x0_slider, y0_slider):
    view_2d, runs_2d, where_2d = update_2d(
        x0_slider.value, y0_slider.value, eta_slider.value, rho_sam_slider.value, rho_usam_slider.value
    )
    view_2d
    return


@app.cell
def _(DEFAULTS, jnp, loss_2d, mo, np, sam, update_2d):
    # Key numbers at the default setting, checked against the library (runs in every mode, and in the tests).
    _, _runs, _where = update_2d(*DEFAULTS["w0"], DEFAULTS["eta"], DEFAULTS["rho_sam"], DEFAULTS["rho_usam"])
    _w0 = jnp.array(DEFAULTS["w0"])
    _data = {"example": jnp.zeros((1,))}
    _sam = sam.SAM(DEFAULTS["rho_sam"])
    _step = _w0 - DEFAULTS["eta"] * sam.gradient(_sam, loss_2d, _w0, _data)
    assert np.allclose(_runs["n_sam"]["path"][1], _step, rtol=0, atol=1e-13), "first SAM step != w0 - eta*gradient"
    _norms = np.linalg.norm(_runs["n_sam"]["eps"], axis=1)
    assert np.allclose(_norms, DEFAULTS["rho_sam"], rtol=1e-12), "SAM ascent steps must have length rho"
    _g = np.asarray(jnp.stack([sam.gradient(sam.ERM(), loss_2d, w, _data) for w in _runs["usam"]["path"][:5]]))
    assert np.allclose(_runs["usam"]["eps"][:5], DEFAULTS["rho_usam"] * _g, rtol=1e-12), "USAM ascent != rho*grad"
    assert _where == {"erm": "sharp", "n_sam": "flat", "usam": "flat"}, _where
    checks_2d = "passed"
    mo.md(f"_Checked against `samtheory.sam.gradient` at the default setting: first SAM step, ‖ε‖ = ρ, "
          f"USAM's ε = ρ∇L; GD ends in the sharp minimum, SAM and USAM in the flat one ({checks_2d})._")
    return (checks_2d,)


if __name__ == "__main__":
    app.run()
