"""The reading-group demos (``demos/``): as scripts, through the CLI, and in a real browser.

* **Script**: each demo's notebook runs headless (``app.run()``, marimo's
  script mode); its last cell asserts the demo's key numbers against the
  library (e.g. the switching demo against the reference notebook's printed
  test losses, the DLN demo against Theorem 1 in exact form), so a failing
  check fails the test. Two interactions then run with JAX's compile log
  on: none may compile.
* **Browser**: one ``marimo run --headless`` server for the folder, one
  headless Chromium driven by the ``playwright`` package at
  ``/usr/bin/chromium`` (``$SAMTHEORY_CHROMIUM`` overrides; nothing
  downloads a browser). For each demo: every cell rendered (the readout and
  the passed checks are on the page), no error toast, no console error; one
  slider moved with the keyboard; the readout changed.
  ``SAMTHEORY_DEMO_SCREENSHOTS=DIR`` also saves a full-page PNG per demo.
* Without marimo, playwright or Chromium these skip, saying how to install
  them; with ``CI=true`` they fail instead.

Conventions: none of the mathematical ones (they are in the demos' checks).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from samtheory import demos as demo_cli

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / "demos"
NAMES = list(demo_cli.DEMOS)
CHROMIUM = os.environ.get("SAMTHEORY_CHROMIUM", "/usr/bin/chromium")
INSTALL = "bash scripts/install_system_deps.sh && python3 -m pip install -e '.[demo]'"
ON_CI = os.environ.get("CI", "").lower() == "true"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--no-first-run", "--disable-dev-shm-usage"]


def _missing(what: str) -> None:
    message = f"{what}; install with: {INSTALL}"
    if ON_CI:
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


def _need_marimo() -> None:
    if importlib.util.find_spec("marimo") is None:
        _missing("marimo is not installed")


def _load_app(name: str):
    spec = importlib.util.spec_from_file_location(f"demo_{name}", DEMO_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def test_cli_lists_every_demo_file(capsys):
    assert demo_cli.main(["--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == NAMES
    on_disk = sorted(p.stem for p in DEMO_DIR.glob("*.py") if not p.stem.startswith("_") and p.stem != "build_cache")
    assert sorted(NAMES) == on_disk


def test_cli_commands_and_errors(capsys, tmp_path):
    command = demo_cli.marimo_command("sam_2d", export="html", out=tmp_path / "x.html")
    assert command[1:4] == ["-m", "marimo", "export"] and "html" in command and str(tmp_path / "x.html") in command
    assert "--include-outputs" in demo_cli.marimo_command("sam_2d", export="ipynb")
    assert demo_cli.marimo_command("sam_2d", port=1234, headless=True)[3:] == [
        "run", str(DEMO_DIR / "sam_2d.py"), "--no-token", "--port", "1234", "--headless"]
    assert demo_cli.main(["no_such_demo"]) == 2
    assert "NAME must be one of" in capsys.readouterr().err
    assert demo_cli.main(["sam_2d", "--export", "pdf"]) == 2


def _bench_demos():
    spec = importlib.util.spec_from_file_location("bench_demos", ROOT / "benchmarks" / "bench_demos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", NAMES)
def test_demo_runs_as_script_checks_pass_and_interactions_never_compile(name):
    """Every cell runs; the check cell asserts the key numbers against the library.

    Then two interactions of the benchmark (``benchmarks/bench_demos.py``)
    run with JAX's compile log on: moving a control must never compile
    (compilation happens once, when the demo loads).
    """
    _need_marimo()
    _, defs = _load_app(name).run()
    checks = [value for key, value in defs.items() if key.startswith("checks_")]
    assert checks == ["passed"], f"{name}: its check cell did not run to the end"
    import logging

    import jax

    bench = _bench_demos()
    fn_name, calls = bench.INTERACTIONS[name]
    counter = bench.CompileCounter()
    logger = logging.getLogger("jax")
    jax.config.update("jax_log_compiles", True)
    logger.addHandler(counter)
    try:
        for args in (calls[1], calls[-1]):
            defs[fn_name](*args)
    finally:
        logger.removeHandler(counter)
        jax.config.update("jax_log_compiles", False)
    assert not counter.messages, f"{name}: an interaction compiled: {counter.messages}"


# --------------------------------------------------------------------------
# In a real browser.
# --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    _need_marimo()
    port = _free_port()
    log = open(ROOT / ".pytest_cache" / "marimo_server.log", "w") if (ROOT / ".pytest_cache").is_dir() else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "marimo", "run", str(DEMO_DIR), "--headless", "--no-token", "--port", str(port)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"marimo run exited with {proc.returncode}")
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("marimo run did not start listening within 60 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser():
    if importlib.util.find_spec("playwright") is None:
        _missing("the playwright Python package is not installed")
    if not Path(CHROMIUM).exists():
        _missing(f"no Chromium at {CHROMIUM} (Debian package 'chromium')")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


READOUT = ".st-readout"
BENIGN_CONSOLE = ("was preloaded using link preload",)


@pytest.mark.parametrize("name", NAMES)
def test_demo_in_browser(name, browser, server):
    shots = os.environ.get("SAMTHEORY_DEMO_SCREENSHOTS")
    # marimo scrolls inside its own container: for a screenshot of the whole page, a tall viewport.
    page = browser.new_page(viewport={"width": 1400, "height": 3000 if shots else 1000})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" and not any(b in m.text for b in BENIGN_CONSOLE) else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    try:
        page.goto(f"{server}/?file={name}.py")
        # Every cell has run when the check cell's "(passed)" and the readout are on the page.
        page.wait_for_selector(READOUT, timeout=240_000)
        page.wait_for_function("() => document.body.innerText.includes('(passed)')", timeout=240_000)
        body = page.inner_text("body")
        assert "An internal error occurred" not in body and "Traceback" not in body, body[:2000]
        assert page.locator(".marimo-error").count() == 0
        assert page.locator("img[alt]").count() >= 1, "no figure rendered"
        if shots:  # at the demo's defaults, before the slider moves
            page.wait_for_timeout(1000)
            bottom = page.evaluate(
                "() => Math.max(...[...document.querySelectorAll('.output-area')].map(e => e.getBoundingClientRect().bottom))")
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(shots) / f"{name}.png"),
                            clip={"x": 0, "y": 0, "width": 1400, "height": min(int(bottom) + 30, 3000)})
        before = page.inner_text(READOUT)
        slider = page.locator("[role=slider]").first
        old = slider.get_attribute("aria-valuenow")
        slider.focus()
        page.keyboard.press("ArrowRight")
        if slider.get_attribute("aria-valuenow") == old:  # already at its maximum
            page.keyboard.press("ArrowLeft")
        assert slider.get_attribute("aria-valuenow") != old, "the slider did not move"
        start = time.monotonic()
        page.wait_for_function(
            "before => { const r = document.querySelector('.st-readout'); return r && r.innerText !== before; }",
            arg=before, timeout=60_000,
        )
        latency = time.monotonic() - start
        print(f"{name}: readout changed {latency:.2f} s after the slider moved")
        assert not problems, problems
    finally:
        page.close()


# --------------------------------------------------------------------------
# The demos' drawing layer (samtheory.demo_support.LiveFigure), without marimo.
# --------------------------------------------------------------------------


def _full_draw_png(live) -> "np.ndarray":
    """The same figure drawn the ordinary way (every artist, static or live, in one draw)."""
    import io

    import numpy as np
    from PIL import Image

    for artist in live._live:
        artist.set_animated(False)
    try:
        buffer = io.BytesIO()
        live.fig.savefig(buffer, format="png", dpi=live.fig.dpi)
    finally:
        for artist in live._live:
            artist.set_animated(True)
    return np.asarray(Image.open(buffer).convert("RGB"))


def test_live_figure_matches_a_full_draw_and_rerenders_a_changed_state():
    """Cached static layers + live artists give the pixels of an ordinary draw, before and after a change."""
    import io

    import numpy as np
    from PIL import Image

    from samtheory import demo_support

    live = demo_support.LiveFigure(8.0, 3.0, ncols=2)
    left, right = live.axes.ravel()
    left.plot([0, 1], [0, 1], color="0.6", label="static")
    moving = live.live(left.plot([0, 1], [1, 0], color="C0")[0])
    right.set(xlim=(0, 10), ylim=(-1, 1), title="right", xlabel="x")
    # Off the spines: a live artist is drawn over the whole static layer (a full draw puts spines over lines).
    dots = live.live(right.plot(np.arange(1, 10), np.zeros(9), "o")[0])
    for step in range(3):
        moving.set_ydata([1 - 0.2 * step, 0.2 * step])
        dots.set_ydata(np.sin(np.arange(1, 10) + step))
        if step == 2:
            right.set_ylim(-2, 2)  # a new state of the static layer: rendered again
        png = np.asarray(Image.open(io.BytesIO(live.png())).convert("RGB"))
        assert np.array_equal(png, _full_draw_png(live)), f"step {step}: the layered PNG differs from a full draw"
    assert len(live._layers) == 3  # two axes, the right one in two states


def test_live_figure_refuses_a_state_that_leaves_its_cell():
    from samtheory import demo_support

    live = demo_support.LiveFigure(8.0, 3.0, ncols=2)
    left, right = live.axes.ravel()
    live.png()  # the cells are measured on this first state
    right.set_ylabel("a label\nfar too tall and wide for the gap\nbetween the two axes", fontsize=30)
    with pytest.raises(ValueError, match="outside its cell"):
        live.png()
