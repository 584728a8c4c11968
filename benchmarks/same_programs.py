"""Hashes of the lowered programs the LeNet benchmarks time (SNIP, GraSP and magnitude scoring;
the masked Adam train step): run it in two checkouts to show that a change leaves them the
same program, so a timing difference between the two is noise.

  python -m benchmarks.same_programs

Location metadata (source files, line numbers) is dropped before hashing. Used for run 12 in
docs/benchmarks.md (the commit before the model contract needed its private names for the same
programs: ``pai._options``, ``train.loop._programs``).
"""

from __future__ import annotations

import hashlib

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune import models
from jaxprune.studies import pai
from jaxprune.train import Split, TrainConfig, train_programs


def lowered() -> dict[str, str]:
    """The StableHLO text of each benchmarked program, by name."""
    model = models.get("lenet_300_100")
    shape = (28, 28, 1)
    one = jax.tree.map(lambda a: a[0], pai.init_seeds(model, shape, [0]))
    x, y = jnp.zeros((100, *shape)), jnp.zeros((100,), jnp.int32)
    out = {}
    for method in ("snip", "grasp", "magnitude"):
        fn = pai.scoring_fn(model, method, shape, pai.criterion_options_key())
        out[f"score {method}"] = fn.lower(one["params"], batch=({}, (x, y)),
                                          key=jax.random.key(0)).as_text()
    cfg = TrainConfig(dataset="mnist", epochs=1, batch_size=60, optimizer="adam",
                      learning_rate=1e-3)
    train = Split(np.zeros((600, *shape), np.float32), np.zeros((600,), np.int32))
    progs = train_programs(model, cfg, train)
    state = progs.init(one["params"], {}, None, 0)
    sums = {k: jnp.zeros((), jnp.float32) for k in ("loss", "correct", "count")}
    key_data = jax.random.key_data(jax.random.key(0))
    out["train step"] = progs.step.lower(state, sums, jnp.asarray(train.images),
                                         jnp.asarray(train.labels), jnp.arange(60),
                                         key_data).as_text()
    return out


def main() -> None:
    for name, text in lowered().items():
        body = "\n".join(line.split(" loc(")[0] for line in text.splitlines()
                         if not line.startswith("#loc"))
        print(f"{name}: {hashlib.md5(body.encode()).hexdigest()} ({len(body):,} chars)")


if __name__ == "__main__":
    main()
