"""The per-layer figures quoted in this README and in ../init_conv/README.md, recomputed.

    python experiments/synflow_mnist/layers.py        # about 40 s on 2 cores

Weights kept per layer (seed 0, unless stated) by SynFlow (100 rounds) and magnitude at the
compressions the READMEs cite, under the zoo's init and PyTorch's, and with PyTorch's biases set
to zero; the largest |w| per layer of Conv-4 (x1/8); and whether keeping SynFlow's float64
scores float64 through the top-k changes any mask entry on the 6x100 MLP.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune import models
from jaxprune.studies import pai

warnings.simplefilter("ignore")  # the collapses are what is being counted


def _kernels(tree):
    return [(jax.tree_util.keystr(p), a) for p, a in jax.tree_util.tree_flatten_with_path(tree)[0]
            if a.ndim > 1]


def kept(mask) -> list[int]:
    return [int(np.sum(m)) for _, m in _kernels(mask)]


def zero_biases(v):
    params = jax.tree_util.tree_map_with_path(
        lambda p, a: jnp.zeros_like(a) if "bias" in jax.tree_util.keystr(p) else a, v["params"])
    return {**v, "params": params}


def one_init(model, shape, seed):
    return jax.tree.map(lambda a: a[0], pai.init_seeds(model, shape, [seed]))


def main() -> None:
    mnist, cifar = (28, 28, 1), (32, 32, 3)
    print("6x100 MLP (fc1..fc6), weights kept")
    for init in ("default", "torch"):
        model = models.get("mlp_6x100", init=init)
        for seed in (0, 1, 2):
            v = one_init(model, mnist, seed)
            print(f"  {init:7s} seed {seed} synflow 1000x:", kept(
                pai.prune(model, v, "synflow", 1 - 1e-3, input_shape=mnist)))
        v = one_init(model, mnist, 0)
        print(f"  {init:7s} seed 0 synflow 316x: ", kept(
            pai.prune(model, v, "synflow", 1 - 10**-2.5, input_shape=mnist)))
        print(f"  {init:7s} seed 0 magnitude 10x: ", kept(
            pai.prune(model, v, "magnitude", 0.9, input_shape=mnist)))
        if init == "torch":
            print("  torch   seed 0 synflow 1000x, biases zeroed:", kept(
                pai.prune(model, zero_biases(v), "synflow", 1 - 1e-3, input_shape=mnist)))
        for c in (100, 1000):  # float64 scores through the top-k vs the default float32 cast
            ref = pai.prune(model, v, "synflow", 1 - 1 / c, input_shape=mnist)
            with jax.enable_x64(True):
                v64 = jax.tree.map(lambda a: a.astype(jnp.float64), v)
                m64 = pai.prune(model, v64, "synflow", 1 - 1 / c, input_shape=mnist)
            diff = sum(int(np.sum(np.asarray(a) != np.asarray(b)))
                       for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(m64), strict=True))
            print(f"  {init:7s} seed 0 synflow {c}x: mask entries that differ with float64 "
                  f"through the top-k: {diff}")
    print("Conv-4 x1/8 (conv1..conv4, fc1..fc3), weights kept")
    for init in ("default", "torch"):
        model = models.get("conv4", init=init, width_multiplier=0.125)
        for seed in (0, 1):
            v = one_init(model, cifar, seed)
            for c in (100, 1000):
                print(f"  {init:7s} seed {seed} synflow {c}x:", kept(
                    pai.prune(model, v, "synflow", 1 - 1 / c, input_shape=cifar)))
            if init == "torch":
                print(f"  torch   seed {seed} synflow 1000x, biases zeroed:", kept(
                    pai.prune(model, zero_biases(v), "synflow", 1 - 1e-3, input_shape=cifar)))
        v = one_init(model, cifar, 0)
        print(f"  {init:7s} seed 0 magnitude 10x:", kept(
            pai.prune(model, v, "magnitude", 0.9, input_shape=cifar)))
        print(f"  {init:7s} seed 0 max |w|:", [round(float(jnp.max(jnp.abs(a))), 3)
                                                 for _, a in _kernels(v["params"])])


if __name__ == "__main__":
    main()
