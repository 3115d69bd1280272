import time, json, sys, os
import jax, jax.numpy as jnp, numpy as np
print(jax.__version__, jax.devices(), flush=True)
import flax, optax; print("flax", flax.__version__, "optax", optax.__version__)
from samtheory.nn.resnet import ResNetConfig, build_model, init_variables
from samtheory.nn.sam_step import init_train_state, make_train_step, make_optimizer
from samtheory.sam import ERM, SAM
out = {}
for bs in (128, 256):
    cfg = ResNetConfig(num_classes=10, bf16=True)
    model = build_model(cfg)
    params, stats = init_variables(cfg, jax.random.PRNGKey(0), (32, 32, 3))
    opt = make_optimizer(lambda s: 0.1)
    x = jax.random.normal(jax.random.PRNGKey(1), (bs, 32, 32, 3)); y = jnp.arange(bs) % 10
    for name, var in [("erm", ERM()), ("sam", SAM(0.05)), ("msam32", SAM(0.05, m=32))]:
        step = jax.jit(make_train_step(model, var, opt), donate_argnums=0)
        st = init_train_state(jax.device_put(params), jax.device_put(stats), opt)
        t = time.perf_counter(); st, r = step(st, (x, y), jax.random.PRNGKey(2)); jax.block_until_ready(st); c = time.perf_counter() - t
        for _ in range(5): st, r = step(st, (x, y), jax.random.PRNGKey(2))
        jax.block_until_ready(st)
        n = 50; t = time.perf_counter()
        for _ in range(n): st, r = step(st, (x, y), jax.random.PRNGKey(2))
        jax.block_until_ready(st); dt = (time.perf_counter() - t) / n
        out[f"{name}_bs{bs}"] = dict(step_ms=dt * 1e3, img_s=bs / dt, compile_s=c)
        print(name, bs, f"{dt*1e3:.2f} ms/step, {bs/dt:.0f} img/s, compile {c:.1f}s", flush=True)
    print("ratio sam/erm", out[f"sam_bs{bs}"]["step_ms"] / out[f"erm_bs{bs}"]["step_ms"])
json.dump(out, open(os.environ.get("OUT", "/tmp") + "/probe.json", "w"), indent=1)
