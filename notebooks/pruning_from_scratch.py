# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Pruning from Scratch: how diverse are the structures found from random networks?
#
# Wang et al. (AAAI 2020) learn one gate per channel on a *frozen, randomly initialized*,
# widened network, under a penalty pulling the mean gate toward r; the gates then decide how
# many channels each layer keeps at a MAC budget, and that architecture is trained from
# scratch. The paper observes that different random inits give *more diverse* structures than
# gates learned on *trained* weights, at similar accuracy.
#
# Here, on MNIST-1D (embedded, no files): the 1-D CNN widened 1.5x, gates on many random
# networks at once and on a few networks trained first, one architecture per network at 50%
# fewer MACs than the standard net, the diversity of the two groups (pairwise distances, a
# permutation test, a figure), and a few of the structures trained from scratch. Run it as a
# script: `python notebooks/pruning_from_scratch.py` (`JAXPRUNE_QUICK=1`: about a minute).

# %%
import os

import numpy as np

from jaxprune import data
from jaxprune import structured as st
from jaxprune.report import format_table, plot_structure_diversity
from jaxprune.studies import scratch
from jaxprune.train import Split

QUICK = os.environ.get("JAXPRUNE_QUICK") == "1"
OUT = os.environ.get("JAXPRUNE_NOTEBOOK_OUT", "notebooks/figures")
os.makedirs(OUT, exist_ok=True)

x, y = data.load("mnist1d", "train")
train, val = Split(x[:-1000], y[:-1000]), Split(x[-1000:], y[-1000:])
if QUICK:  # a smoke run: 1,000 gate-training examples, 500 for validation
    train, val = Split(train.images[:1000], train.labels[:1000]), Split(val.images[:500],
                                                                      val.labels[:500])
test = Split(*data.load("mnist1d", "test"))
structure, standard = scratch.expanded_structure("cnn1d_mnist1d", {}, 1.5)
reference = scratch.standard_macs("cnn1d_mnist1d", **standard)
gate_cfg = scratch.GateConfig(epochs=2 if QUICK else 10, batch_size=64, augment=False)
n_random, n_trained = (6, 3) if QUICK else (32, 8)
print(f"{len(structure.groups)} gated layers, {sum(g.width for g in structure.groups)} gates; "
      f"standard model {reference:,} MACs, expanded {st.count_pruned(structure).macs:,}")

# %% [markdown]
# ## 1. Gates on frozen random networks, all seeds in one program
# `learn_gates(..., stacked=True)` trains the gates of every network together (the weights
# never change); `search` then ranks each network's gates globally and finds the structure with
# 50% fewer MACs than the *standard-width* model (within 1%: this small net's channels are
# coarse).

# %%
random_seeds = list(range(n_random))
rand_result, rand_found, _ = scratch.find_architectures(
    structure, random_seeds, train, val, gate_cfg, 0.5, reference_macs=reference,
    tolerance=0.01, progress=False)
print(f"random networks: {rand_result.strategy}; gates reached r = {gate_cfg.target} in "
      f"{sum(f.met_target for f in rand_found)} of {n_random}")

# %% [markdown]
# ## 2. The same on networks trained first

# %%
trained_seeds = list(range(1000, 1000 + n_trained))
pre_cfg = scratch.train_config(1 if QUICK else 10, 0.0, optimizer="adam", learning_rate=3e-3,
                               schedule="constant", augment=False)
trained_result, trained_found, how = scratch.find_architectures(
    structure, trained_seeds, train, val, gate_cfg, 0.5, reference_macs=reference,
    tolerance=0.01, pretrain=pre_cfg, progress=False)
print(f"gates on networks {how}; gates reached r = {gate_cfg.target} in "
      f"{sum(f.met_target for f in trained_found)} of {n_trained}")

# %% [markdown]
# ## 3. Diversity
# Width vectors (kept channels per layer); pairwise normalized L1 distance (the fraction of
# the expanded channels placed differently) and cosine similarity; a one-sided permutation
# test of "random-init structures are more diverse" on each run's distance to its own group's
# mean structure (so that two groups centred on different structures do not count as spread).

# %%
names = structure.group_names
full = [structure.group(n).width for n in names]
groups = {"random": scratch.width_vectors([f.searched for f in rand_found], names),
          "trained": scratch.width_vectors([f.searched for f in trained_found], names)}
rows = []
for label, w in groups.items():
    d = scratch.diversity(w, full)
    rows.append({"group": label, "runs": d["runs"], "pairwise L1": d["l1_mean"],
                 "cosine": d["cosine_mean"], "layer spread": d["layer_spread_mean"],
                 "mean widths": str(np.round(w.mean(0), 1).tolist())})
print(format_table(rows))
test_result = scratch.more_diverse(groups["random"], groups["trained"], full)
print(f"random more diverse than trained: pairwise L1 {test_result['l1_a']:.4f} vs "
      f"{test_result['l1_b']:.4f}; distance to the group mean {test_result['spread_a']:.4f} vs "
      f"{test_result['spread_b']:.4f}, permutation p = {test_result['p_value']:.4f}")
plot_structure_diversity(groups, names, full, f"{OUT}/pfs_diversity.png",
                         title="cnn1d_mnist1d x1.5, 50% fewer MACs")

# %% [markdown]
# ## 4. A few structures of each group trained from scratch (Scratch-B)
# `int(epochs / (1 - 0.5))` epochs from a new random init, Adam here (the small net trains
# better with it than with the paper's SGD recipe in so few epochs).

# %%
epochs = 1 if QUICK else 10
cfg = scratch.train_config(epochs, 0.5, optimizer="adam", learning_rate=3e-3,
                           schedule="constant", augment=False)
results = []
for label, found in (("random", rand_found), ("trained", trained_found)):
    for f in found[:1 if QUICK else 4]:
        res = scratch.train_from_scratch(structure, f.searched.keep, f.seed, train, test, cfg)
        results.append({"group": label, "seed": f.seed, "MACs": f.searched.counts.macs,
                        "test acc": res["test_accuracy"]})
print(format_table(results))
for label in groups:
    acc = [r["test acc"] for r in results if r["group"] == label]
    print(f"{label}: {100 * np.mean(acc):.2f} +/- {100 * np.std(acc):.2f}% over {len(acc)}")
