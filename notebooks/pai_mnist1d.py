# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Pruning at initialization on MNIST-1D
#
# Which weights of a *random* network should we keep? This notebook prunes SynFlow's 6x100 MLP at
# initialization with five criteria, looks at **where** each criterion removes weights, trains
# the pruned networks, and runs one sanity check of Frankle et al. (2021): does the mask carry
# information beyond its per-layer densities?
#
# Everything runs offline on MNIST-1D (generated locally). Open it with jupytext
# (`jupytext --to notebook pai_mnist1d.py`) or run it as a script:
# `python notebooks/pai_mnist1d.py` (set `JAXPRUNE_QUICK=1` for a 1-minute smoke run).

# %%
import os

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxprune import data, models, sanity  # noqa: E402
from jaxprune.report import plot_accuracy_vs_compression  # noqa: E402
from jaxprune.studies import pai  # noqa: E402
from jaxprune.train import Split, TrainConfig, fit  # noqa: E402

QUICK = os.environ.get("JAXPRUNE_QUICK") == "1"
OUT = os.environ.get("JAXPRUNE_NOTEBOOK_OUT", "notebooks/figures")
os.makedirs(OUT, exist_ok=True)

train, test = Split(*data.load("mnist1d", "train")), Split(*data.load("mnist1d", "test"))
if QUICK:  # a smoke run: 1,000 training examples
    train = Split(train.images[:1000], train.labels[:1000])
model = models.get("mlp_6x100")
input_shape = train.images.shape[1:]
print("train", train.images.shape, "test", test.images.shape)

# %% [markdown]
# ## 1. Where does each criterion prune?
# Seed 0's init, five criteria, 100x compression (99% of the weights removed). Layer collapse, a
# layer losing *all* its weights, disconnects the network; SynFlow was designed to avoid it.

# %%
seeds = list(range(2 if QUICK else 3))  # the seeds of section 2's sweep: its programs, reused
variables = pai.init_seeds(model, input_shape, seeds)
batches = pai.score_batches(train, seeds, per_class=10)
methods = ["random", "magnitude", "snip", "grasp", "synflow"]
sparsity = pai.compression_to_sparsity(100)
densities = {}
for method in methods:
    stacked = pai.prune_seeds(model, variables, method, sparsity, seeds=seeds, batches=batches)
    report = pai.mask_reports(model, variables, stacked, input_shape)[0]  # seed 0
    densities[method] = [r.density for r in report.rows if r.prunable]
    print(f"{method:>10}: collapsed layers {['/'.join(p) for p in report.collapsed]}")

fig, ax = plt.subplots(figsize=(6.4, 3.6))
layers = np.arange(1, len(densities["random"]) + 1)
for i, method in enumerate(methods):
    ax.bar(layers + (i - 2) * 0.16, densities[method], width=0.16, label=method)
ax.set_yscale("log")
ax.set_xlabel("layer")
ax.set_ylabel("density kept")
ax.set_title("Per-layer density at 100x compression")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(f"{OUT}/layer_density.png", dpi=120)

# %% [markdown]
# ## 2. Accuracy vs compression
# Three seeds per point (two in the quick run); all networks train together in one vmapped run.

# %%
config = TrainConfig(model="mlp_6x100", dataset="mnist1d", epochs=2 if QUICK else 30,
                     batch_size=100, optimizer="adam", learning_rate=2e-3, schedule="cosine")
log10s = [1.0, 2.0] if QUICK else [0.5, 1.0, 1.5, 2.0, 2.5]
rows = pai.sweep(model, train, test, config, methods=methods,
                 sparsities=[pai.compression_to_sparsity(10**e) for e in log10s],
                 seeds=seeds, progress=not QUICK)
table = pai.aggregate(rows)
plot_accuracy_vs_compression(table, f"{OUT}/accuracy_vs_compression.png",
                             title="MNIST-1D, 6x100 MLP, pruned at init")
for r in table:
    print(f"{r['method']:>10} {r['compression']:>8.1f}x  {100 * r['acc_mean']:.1f} "
          f"+/- {100 * r['acc_std']:.1f}")

# %% [markdown]
# ## 3. Sanity check: shuffle the SynFlow mask within each layer
# Frankle et al. (2021) found that PaI masks survive this: per-layer densities, not the chosen
# positions, carry most of the information. We compare SynFlow's mask with its layer-wise shuffle
# at 100x compression, same init, same training.

# %%
seeds = [0, 1] if QUICK else [0, 1, 2]
variables = pai.init_seeds(model, input_shape, seeds)
synflow_masks = pai.prune_seeds(model, variables, "synflow", sparsity, seeds=seeds,
                                input_shape=input_shape)
keys = jax.random.split(jax.random.key(42), len(seeds))
shuffled = jax.vmap(lambda m, k: sanity.shuffle_mask(m, key=k))(synflow_masks, keys)
both_masks = jax.tree.map(lambda a, b: np.concatenate([a, b]), synflow_masks, shuffled)
both_vars = jax.tree.map(lambda a: np.concatenate([a, a]), variables)
res = fit(model, both_vars, train, test, config, mask=both_masks, seeds=seeds + seeds,
          progress=False).results["test_accuracy"]
n = len(seeds)
print(f"SynFlow mask:          {100 * np.mean(res[:n]):.1f}% (seeds {seeds})")
print(f"shuffled within layer: {100 * np.mean(res[n:]):.1f}%")
