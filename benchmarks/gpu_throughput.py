"""fp32 vs bf16 training-step throughput of a 2x512 MLP with a Normal CRPS head.

Usage::

    .venv/bin/python benchmarks/gpu_throughput.py            # batches 8k / 32k / 65k
    .venv/bin/python benchmarks/gpu_throughput.py --small    # CPU: batches 512 / 2k, 2x128

Synthetic features on the device; each configuration is compiled, warmed up and timed over
``--steps`` jitted train steps (AdamW, CRPS of a Normal around a raw forecast). Prints
samples/s per dtype and batch size and the bf16 speed-up.
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from probcast.configs import default
from probcast.model.network import build_model
from probcast.train.data import DeviceData
from probcast.train.objective import StepFns, make_optimizer

N_FEATURES, N_STATIONS = 16, 500


def _batch(n: int) -> DeviceData:
    key = jax.random.key(0)
    x = jax.random.normal(key, (n, N_FEATURES))
    center = x[:, :1] * 2.0
    y = center + jax.random.normal(jax.random.fold_in(key, 1), (n, 1))
    station = jax.random.randint(key, (n,), 0, N_STATIONS)
    return DeviceData(x, station, center, jnp.ones(1), y, jnp.ones((n, 1), bool))


def throughput(model_cfg: ml_collections.ConfigDict, dtype, batch: int, steps: int) -> float:
    heads = {"t2m": "normal"}
    model = build_model(N_FEATURES, N_STATIONS, heads, model_cfg, seed=0, dtype=dtype)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx, _ = make_optimizer(default.get_config().train, 1000)
    fns = StepFns(graphdef, rest, heads, tx, members=1)
    data = _batch(batch)
    opt_state = tx.init(params)
    key = jax.random.key(0)
    for _ in range(3):  # compile + warm up
        params, opt_state, loss, _ = fns.step(params, opt_state, data, key)
    jax.block_until_ready(loss)
    start = time.perf_counter()
    for i in range(steps):
        params, opt_state, loss, _ = fns.step(params, opt_state, data, jax.random.fold_in(key, i))
    jax.block_until_ready(loss)
    return steps * batch / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small sizes for a CPU")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    cfg = default.get_config().model
    cfg.n_layers, cfg.hidden = 2, (128 if args.small else 512)
    batches = (512, 2048) if args.small else (8192, 32768, 65536)
    device = jax.devices()[0]
    print(f"device: {device.platform} ({device.device_kind}); MLP {cfg.n_layers}x{cfg.hidden}")
    print(f"{'batch':>8} {'fp32 samples/s':>16} {'bf16 samples/s':>16} {'speed-up':>9}")
    for batch in batches:
        fp32 = throughput(cfg, jnp.float32, batch, args.steps)
        bf16 = throughput(cfg, jnp.bfloat16, batch, args.steps)
        print(f"{batch:>8} {fp32:>16.3g} {bf16:>16.3g} {bf16 / fp32:>8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
