# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # AutoS: learning a pruning-at-initialization score from lottery tickets
#
# Iterative magnitude pruning (IMP) with rewinding finds, for every weight, how many pruning
# rounds it survives. AutoS (Liu et al. 2024) asks whether a weight's fate can be read off its
# initial value and initial gradient, and learns that map with a small network; the learned
# score then prunes *new* networks at initialization in one pass.
#
# Here, on the embedded digits (no files): IMP on three inits of a small LeNet, a scorer trained
# on two of them and checked on the third, then the scorer against magnitude and SNIP on fresh
# inits. Run it as a script: `python notebooks/autos.py` (`JAXPRUNE_QUICK=1`: a 1-minute run).

# %%
import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from jaxprune import data, models  # noqa: E402
from jaxprune.report import plot_accuracy_vs_compression  # noqa: E402
from jaxprune.studies import autos, lottery, pai  # noqa: E402
from jaxprune.train import Split, TrainConfig  # noqa: E402

QUICK = os.environ.get("JAXPRUNE_QUICK") == "1"
OUT = os.environ.get("JAXPRUNE_NOTEBOOK_OUT", "notebooks/figures")
os.makedirs(OUT, exist_ok=True)
work = tempfile.mkdtemp(prefix="autos-notebook-")

train, test = Split(*data.load("digits", "train")), Split(*data.load("digits", "test"))
widths = (32, 16)
model = models.get("lenet_300_100", widths=widths)
config = TrainConfig(model="lenet_300_100", dataset="digits", model_options={"widths": widths},
                     epochs=2 if QUICK else 8, batch_size=64, optimizer="adam",
                     learning_rate=3e-3)

# %% [markdown]
# ## 1. Survival counts from IMP
# Three seeds, 30% of each layer's remaining weights per level, rewinding to the init. The
# survival count of a weight is the number of levels it survived.

# %%
levels = 2 if QUICK else 6
imp = lottery.run(model, train, test, config,
                  lottery.LotteryConfig(levels=levels, rate=0.3, controls=()),
                  seeds=[0, 1, 2], workdir=f"{work}/imp", progress=False)
for row in lottery.arm_rows(imp.levels):
    print(f"level {row['level']}: {row['remaining %']:6.2f}% remaining, ticket accuracy "
          f"{100 * row['acc']:.2f}%")

# %% [markdown]
# ## 2. The scorer
# Features (theta_0, g_0) of seeds 0 and 1 train it; seed 2 is held out whole. The rank
# correlation with the held-out survival counts is what matters for pruning; |theta_0| (what
# magnitude pruning ranks by) and |theta_0 g_0| (SNIP) are the baselines.

# %%
ds = autos.dataset_from_lottery([f"{work}/imp"])
train_rows, held_rows = autos.split(ds, "run")
scorer, curve = autos.train_scorer(ds, train_rows, held_rows, widths=(16, 64, 64),
                                   epochs=2 if QUICK else 15, batch_size=256, progress=False)
autos.save_scorer(scorer, f"{work}/scorer", curve)
print(f"held-out rank correlation: scorer {scorer.info['heldout_spearman']:.3f}, |theta_0| "
      f"{scorer.info['heldout_spearman_magnitude']:.3f}, |theta_0 g_0| "
      f"{scorer.info['heldout_spearman_snip']:.3f}")

fig, ax = plt.subplots(figsize=(5, 3.4))
ax.plot([r["epoch"] for r in curve], [r["heldout_spearman"] for r in curve], marker="o")
ax.set_xlabel("epoch")
ax.set_ylabel("held-out rank correlation")
ax.set_title("AutoS scorer on the held-out seed")
fig.tight_layout()
fig.savefig(f"{OUT}/autos_scorer.png", dpi=120)

# %% [markdown]
# ## 3. Pruning new networks at initialization
# Fresh inits (seeds 10, 11), pruned once by the scorer, by magnitude and by SNIP, trained
# together.

# %%
sparsities = [0.5, 0.9] if QUICK else [0.5, 0.9, 0.97]
rows = pai.sweep(model, train, test, config, methods=["magnitude", "snip", "autos"],
                 sparsities=sparsities, seeds=[10, 11], progress=False,
                 criterion_options={"scorer": f"{work}/scorer"})
table = pai.aggregate(rows)
for r in table:
    print(f"{r['method']:>9} {r['compression']:6.3g}x  {100 * r['acc_mean']:.2f}%")
plot_accuracy_vs_compression(table, f"{OUT}/autos_vs_pai.png",
                             title="digits, small LeNet, pruned at init")
