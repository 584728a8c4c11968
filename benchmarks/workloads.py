"""The benchmark workloads: models at their real shapes, random data, the implementations.

A workload is described by a JSON-able ``spec`` dict (``kind`` plus its settings) and built by
``build(spec)`` into a :class:`Workload`: ``impls`` (``{name: thunk}``, each thunk runs the
workload once), a correctness ``check(name, output)`` run after the first call, and ``notes``.
Implementation names start with ``jax`` (jaxprune), ``torch`` (the PyTorch reference,
:mod:`benchmarks.torch_ref`), or ``proto`` (a speed-up prototype, :mod:`benchmarks.prototypes`).

Data is random (standard-normal images, uniform labels in [0, 10)) at the datasets' real shapes:
MNIST 28x28x1 for LeNet-300-100, CIFAR 32x32x3 for Conv-6 and ResNet-20. Timings do not depend on
pixel values. Scoring batches hold 100 examples (10 per class, as SNIP/GraSP score); SynFlow uses
its all-ones input of batch 1. All pruning is to 90% sparsity, global, 1 round (SNIP, GraSP) or
100 exponential rounds (SynFlow), masks included in the time on both sides.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import prototypes
from jaxprune import criteria, masks, models, schedules, seeds
from jaxprune.studies import pai
from jaxprune.train import create_state, make_train_step, split_variables

PyTree = Any
Thunk = Callable[[], Any]

SCORE_BATCH = 100  # 10 examples per class, 10 classes
TRAIN_BATCH = 128
SPARSITY = 0.9
ROUNDS = {"snip": 1, "grasp": 1, "synflow": 100}
LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 5e-4
# Rows whose masks must equal jax_multi's (the benchmark fails otherwise); other rows' differing
# mask entries are only counted (``ref_multi_laxtopk``: lax.top_k's order of -0.0 and NaN).
EXACT_REFERENCES = ("ref_multi_sorttopk",)


class Workload(NamedTuple):
    impls: dict[str, Thunk]
    check: Callable[[str, Any], None]
    notes: dict[str, Any]


def torch_available() -> bool:
    """Whether PyTorch is installed (without importing it into this process)."""
    return importlib.util.find_spec("torch") is not None


def input_shape(model_name: str) -> tuple[int, ...]:
    return tuple(models.default_input_shape(model_name))


def torch_input_shape(model_name: str) -> tuple[int, ...]:
    h, w, c = input_shape(model_name)
    return (c, h, w)


def random_batch(model_name: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, H, W, C) float32 N(0, 1), labels (n,) int32 in [0, 10))."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *input_shape(model_name)), dtype=np.float32)
    return x, rng.integers(0, 10, n).astype(np.int32)


# ---------------------------------------------------------------------------------------------
# Scoring (pruning at initialization) for N seeds.
# ---------------------------------------------------------------------------------------------


@functools.cache
def prune_fn(model_name: str, method: str, rounds: int, dtype: str, variant: str) -> Callable:
    """``fn(variables, batch, key) -> bool mask``: one seed's pruning, one function object.

    ``dtype="float64"`` is ``pai.prune`` as shipped; ``"float32"`` prunes SynFlow with
    ``schedules.prune_synflow(compute_dtype="float32")`` (the reference's precision: the
    ``jax_multi_f32`` row, and ``jax_multi`` where float64 does not compile, see ``notes``).
    ``variant`` only makes distinct function objects (distinct compiled programs) for the
    reference rows.
    """
    del variant
    model = models.get(model_name)
    shape = input_shape(model_name)

    def fn(variables, batch, key):
        if method == "synflow" and dtype == "float32":
            params, state = split_variables(variables)
            apply_fn = pai.model_fns(model, state).apply_fn
            return schedules.prune_synflow(params, SPARSITY, apply_fn=apply_fn,
                                           input_shape=shape, rounds=rounds,
                                           compute_dtype="float32")
        return pai.prune(model, variables, method, SPARSITY, input_shape=shape, batch=batch,
                         key=key, rounds=rounds)

    return fn


@functools.cache
def score_only_fn(model_name: str, method: str) -> Callable:
    """``fn(variables, batch, key) -> scores``: the criterion alone (no top-k, no mask)."""
    model = models.get(model_name)

    def fn(variables, batch, key):
        params, state = split_variables(variables)
        fns = pai.model_fns(model, state)
        apply_fn, loss_fn = fns.apply_fn, fns.loss_fn
        if method == "snip":
            return criteria.get("snip", loss_fn=loss_fn)(params, batch=batch)
        if method == "grasp":
            temp_loss = criteria.softmax_xent_with_temperature(apply_fn, 200.0)
            return criteria.get("grasp", loss_fn=temp_loss)(params, batch=batch)
        raise ValueError(f"scores-only workloads support snip and grasp, not {method!r}")

    return fn


def score_inputs(model_name: str, num_seeds: int) -> tuple[PyTree, tuple, jax.Array]:
    """Stacked variables (N, ...), stacked scoring batches (N, 100, ...), keys (N,)."""
    model = models.get(model_name)
    variables = pai.init_seeds(model, input_shape(model_name), list(range(num_seeds)))
    xs, ys = zip(*[random_batch(model_name, SCORE_BATCH, s) for s in range(num_seeds)],
                 strict=True)
    batches = (jnp.asarray(np.stack(xs)), jnp.asarray(np.stack(ys)))
    keys = jnp.stack([jax.random.fold_in(jax.random.key(s), 3) for s in range(num_seeds)])
    return variables, batches, keys


def lowering_error(fn: Callable, args: tuple) -> str | None:
    """The error ``jit(fn).lower(*args)`` raises, or None (lowers without compiling)."""
    try:
        jax.jit(fn).lower(*args)
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        return f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
    return None


def flat_kernels(mask: PyTree) -> dict[tuple[str, ...], np.ndarray]:
    """The kernel leaves of a (mask) pytree as host arrays, by path tuple."""
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(mask):
        p = masks.path_tuple(path)
        if p[-1] == "kernel":
            out[p] = np.asarray(leaf)
    return out


def build_score(spec: dict[str, Any], use_torch: bool) -> Workload:
    """jaxprune's multi-seed call vs a Python loop over its jitted single-seed call vs PyTorch.

    ``jax_multi``  ``seeds.map_stacked(fn, variables, batches, keys)`` with one ``fn`` object
                   (``strategy="auto"``); this is what ``pai.prune_seeds`` runs (that function
                   builds a fresh lambda per call and so recompiles every call: see checks).
    ``jax_loop``   ``[jit(fn)(v_i, b_i, k_i) for i in range(N)]`` on per-seed inputs.
    ``ref_multi_sorttopk``  ``jax_multi`` with the sorting top-k jaxprune used before the
                   sort-free one (same masks, asserted).
    ``ref_multi_laxtopk``  ``jax_multi`` with ``jax.lax.top_k`` as the global top-k
                   (``prototypes.lax_topk``; one-round methods only: ``lax.top_k`` needs a
                   static k). Its mask entries differing from ``jax_multi``'s are counted, not
                   asserted zero (``lax.top_k`` orders -0.0 below +0.0 and NaN first).
    ``torch_loop`` Synaptic-Flow's ``prune_loop`` per seed (masked modules, autograd).

    SynFlow at equal precision (``spec["precision"]``, default on; jaxprune's SynFlow computes
    in float64, the reference in float32):
    ``jax_multi_f32``  ``jax_multi`` with ``schedules.prune_synflow(compute_dtype="float32")``,
                   the reference's precision (compare with ``torch_loop``).
    ``torch_loop_f64`` ``torch_loop`` on float64 copies of the models with a float64 input
                   (compare with ``jax_multi``, float64).
    """
    name, method, n = spec["model"], spec["method"], spec["n"]
    scores_only = spec.get("scores_only", False)
    rounds = spec.get("rounds", ROUNDS[method])
    variables, batches, keys = score_inputs(name, n)
    per_seed = [(seeds.unstack(variables, i), seeds.unstack(batches, i), keys[i])
                for i in range(n)]
    notes: dict[str, Any] = {"rounds": rounds, "batch": SCORE_BATCH if method != "synflow" else 1}
    dtype = "float64" if method == "synflow" else "float32"
    if method == "synflow":
        err = lowering_error(prune_fn(name, method, rounds, dtype, "probe"), per_seed[0])
        if err is not None:
            notes["float64_synflow_error"] = err
            dtype = "float32"
        notes["synflow_dtype"] = dtype
    fn = score_only_fn(name, method) if scores_only else prune_fn(name, method, rounds, dtype,
                                                                   "main")
    sort_fn = prune_fn(name, method, rounds, dtype, "sorttopk")
    lax_fn = prune_fn(name, method, rounds, dtype, "laxtopk")
    n_keep = int(pai.budget(per_seed[0][0]["params"], SPARSITY))  # lax.top_k's static k
    # Same-precision SynFlow rows: only where jax_multi itself runs in float64.
    precision = (method == "synflow" and dtype == "float64" and not scores_only
                 and spec.get("precision", True))
    fn32 = prune_fn(name, method, rounds, "float32", "main") if precision else None
    try:
        strategy = seeds.choose_strategy(fn, (variables, batches, keys))
    except Exception as e:  # noqa: BLE001 - the auto rule itself failing is a finding
        notes["auto_strategy_error"] = f"{type(e).__name__}: {str(e)[:160]}"
        strategy = "loop"
    notes["strategy"] = strategy
    single = jax.jit(fn)

    def multi():
        return seeds.map_stacked(fn, variables, batches, keys, strategy=strategy)

    def loop():
        return [single(v, b, k) for v, b, k in per_seed]

    def multi_sort():
        with prototypes.sort_topk():
            return seeds.map_stacked(sort_fn, variables, batches, keys, strategy=strategy)

    def multi_lax():
        with prototypes.lax_topk(n_keep):
            return seeds.map_stacked(lax_fn, variables, batches, keys, strategy=strategy)

    impls: dict[str, Thunk] = {"jax_multi": multi}
    if n > 1:  # at N = 1 the loop is the same single compiled program
        impls["jax_loop"] = loop
    if spec.get("prototypes", True) and not scores_only:
        impls["ref_multi_sorttopk"] = multi_sort
        if rounds == 1:
            impls["ref_multi_laxtopk"] = multi_lax
    if precision:
        strategy32 = seeds.choose_strategy(fn32, (variables, batches, keys))
        notes["strategy_f32"] = strategy32

        def multi32():
            return seeds.map_stacked(fn32, variables, batches, keys, strategy=strategy32)

        impls["jax_multi_f32"] = multi32

    if use_torch:
        import torch

        from benchmarks import torch_ref

        tmodels = [torch_ref.load_flax(torch_ref.build(name), v) for v, _, _ in per_seed]
        notes["torch_params"] = torch_ref.num_params(tmodels[0])
        tbatches = [(torch_ref.to_nchw(b[0]), torch.from_numpy(np.asarray(b[1], np.int64)))
                    for _, b, _ in per_seed]
        tshape = torch_input_shape(name) if len(input_shape(name)) == 3 else input_shape(name)

        def torch_loop():
            if scores_only:
                fns = {"snip": torch_ref.snip_scores, "grasp": torch_ref.grasp_scores}
                return [fns[method](m.eval(), *b) for m, b in zip(tmodels, tbatches, strict=True)]
            return [torch_ref.prune_loop(m, method, SPARSITY, b, tshape, rounds)
                    for m, b in zip(tmodels, tbatches, strict=True)]

        impls["torch_loop"] = torch_loop
        if precision:
            tmodels64 = [copy.deepcopy(m).double() for m in tmodels]

            def torch_loop_f64():
                return [torch_ref.prune_loop(m, method, SPARSITY, b, tshape, rounds)
                        for m, b in zip(tmodels64, tbatches, strict=True)]

            impls["torch_loop_f64"] = torch_loop_f64
    notes["jax_params"] = int(sum(x.size for x in jax.tree.leaves(per_seed[0][0]["params"])))

    ref: dict[str, Any] = {}

    def check(impl: str, out: Any) -> None:
        if scores_only:
            if impl.startswith("torch"):  # both normalized by their sum (SNIP's normalization)
                t = torch_ref.to_flax_layout(name, out[0])
                j = flat_kernels(ref["seed0"])
                ts_ = sum(float(np.sum(t[p])) for p in j)
                js_ = sum(float(np.sum(j[p])) for p in j)
                err = max(float(np.max(np.abs(t[p] / ts_ - j[p] / js_))) for p in j)
                top = max(float(np.max(np.abs(j[p] / js_))) for p in j)
                notes["torch_scores_max_rel_diff_seed0"] = err / top
            elif impl == "jax_multi":
                ref["seed0"] = seeds.unstack(out, 0)
            return
        if impl.startswith("torch"):
            t = torch_ref.masks_to_flax(name, out[0])

            def agree(jax_mask: PyTree) -> float:
                j = flat_kernels(jax_mask)
                return float(np.mean(np.concatenate([(t[p] == j[p]).ravel() for p in j])))

            base = impl.removesuffix("_1t")
            if base == "torch_loop":  # float32 vs jax_multi (float64 for SynFlow)
                notes["torch_mask_agreement_seed0"] = agree(ref["seed0"])
                if "f32_seed0" in ref:  # float32 vs float32
                    notes["torch_loop_vs_jax_multi_f32_mask_agreement_seed0"] = agree(
                        ref["f32_seed0"])
            elif base == "torch_loop_f64":  # float64 vs float64
                notes["torch_loop_f64_vs_jax_multi_mask_agreement_seed0"] = agree(ref["seed0"])
            return
        stacked = seeds.stack(out) if isinstance(out, list) else out
        if not all(jnp.result_type(x) == jnp.bool_ for x in jax.tree.leaves(stacked)):
            raise AssertionError(f"{impl} returned non-bool masks")
        if impl == "jax_multi":
            ref["stacked"] = stacked
            ref["seed0"] = seeds.unstack(stacked, 0)
            return
        if impl == "jax_multi_f32":
            ref["f32_seed0"] = seeds.unstack(stacked, 0)
        diff = sum(int(jnp.sum(a != b)) for a, b in
                   zip(jax.tree.leaves(stacked), jax.tree.leaves(ref["stacked"]), strict=True))
        notes[f"{impl}_mask_entries_differing_from_jax_multi"] = diff
        if (impl in EXACT_REFERENCES or impl.startswith("proto")) and diff:
            raise AssertionError(f"{impl}: masks differ from jax_multi in {diff} entries")

    return Workload(impls, check, notes)


# ---------------------------------------------------------------------------------------------
# Masked training.
# ---------------------------------------------------------------------------------------------


def optimizer() -> optax.GradientTransformation:
    """SGD with momentum and coupled weight decay (PyTorch's ``SGD(weight_decay=...)``)."""
    return optax.chain(optax.add_decayed_weights(WEIGHT_DECAY), optax.sgd(LR, momentum=MOMENTUM))


def random_mask(params: PyTree, sparsity: float, seed: int = 0) -> PyTree:
    """A bool mask pruning ``sparsity`` of all kernels (global random top-k; biases, BN kept)."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    scores = jax.tree.unflatten(
        treedef, [jax.random.uniform(k, x.shape) for k, x in zip(keys, leaves, strict=True)]
    )
    return masks.mask_by_topk(scores, sparsity)


def init_variables(model_name: str, seed: int) -> PyTree:
    model = models.get(model_name)
    return model.init(jax.random.key(seed), jnp.zeros((1, *input_shape(model_name))),
                      train=False)


def masked_state(model_name: str, tx, seed: int = 0):
    """(variables, state): a 90%-sparse masked network ready for ``make_train_step``."""
    variables = init_variables(model_name, seed)
    params, model_state = split_variables(variables)
    return variables, create_state(params, model_state, tx, random_mask(params, SPARSITY, seed))


def _copy(tree: PyTree) -> PyTree:
    return jax.tree.map(jnp.copy, tree)


def build_train(spec: dict[str, Any], use_torch: bool) -> Workload:
    """Masked training steps (batch 128, SGD momentum), ``steps`` per timed call.

    ``jax_step``     ``jit(make_train_step(model, tx), donate_argnums=0)``.
    ``proto_wgrad``  the same step traced under ``prototypes.conv_wgrad_lowering(min_channels)``
                     (conv models only; its parameters after the first call are compared with
                     ``jax_step``'s, which started from the same state).
    ``torch_step``   masked modules (``weight * weight_mask``), ``torch.optim.SGD``.
    """
    name, steps = spec["model"], spec["steps"]
    model, tx = models.get(name), optimizer()
    variables, state0 = masked_state(name, tx)
    x, y = random_batch(name, TRAIN_BATCH, 1)
    x, y = jnp.asarray(x), jnp.asarray(y)
    key = jax.random.key(0)
    notes: dict[str, Any] = {"batch": TRAIN_BATCH, "steps_per_call": steps,
                             "mask_dtypes_bool": all(jnp.result_type(m) == jnp.bool_
                                                     for m in jax.tree.leaves(state0.mask))}
    step = jax.jit(make_train_step(model, tx), donate_argnums=0)
    holder = {"jax": _copy(state0)}

    def run(which: str, fn: Callable) -> Callable[[], Any]:
        def thunk():
            s = holder[which]
            for _ in range(steps):
                s, _ = fn(s, x, y, key)
            holder[which] = s
            return s.params

        return thunk

    impls: dict[str, Thunk] = {"jax_step": run("jax", step)}
    conv_model = len(input_shape(name)) == 3 and name != "lenet_300_100"
    if conv_model and spec.get("prototypes", True):
        min_c = spec.get("min_channels", 64)
        proto_step = jax.jit(make_train_step(model, tx), donate_argnums=0)
        holder["proto"] = _copy(state0)

        def proto():
            with prototypes.conv_wgrad_lowering(min_channels=min_c):
                return run("proto", proto_step)()

        impls["proto_wgrad"] = proto
        notes["proto_min_channels"] = min_c

    if use_torch:
        import torch

        from benchmarks import torch_ref

        tm = torch_ref.load_flax(torch_ref.build(name), variables)
        torch_ref.random_masks(tm, SPARSITY)
        opt = torch_ref.make_optimizer(tm, LR, MOMENTUM, WEIGHT_DECAY)
        tx_, ty_ = torch_ref.to_nchw(np.asarray(x)), torch.from_numpy(np.asarray(y, np.int64))

        def torch_step():
            for _ in range(steps):
                loss = torch_ref.train_step(tm, opt, tx_, ty_)
            return loss

        impls["torch_step"] = torch_step

    def check(impl: str, out: Any) -> None:
        if impl == "jax_step":
            # Donation: the state passed in is consumed (its buffers deleted), not copied.
            probe = _copy(holder["jax"])
            leaf = jax.tree.leaves(probe.params)[0]
            new, _ = step(probe, x, y, key)
            notes["donated_input_deleted"] = bool(leaf.is_deleted())
            holder["jax_ref_params"] = out
            del new
        elif impl == "proto_wgrad":
            ref = holder["jax_ref_params"]
            err = max(float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-30))
                      for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(ref), strict=True))
            notes["proto_max_rel_param_diff_after_first_call"] = err
            if err > 1e-3:
                raise AssertionError(f"proto_wgrad drifted from jax_step: rel diff {err:.2e}")

    return Workload(impls, check, notes)


def build_train_seeds(spec: dict[str, Any], use_torch: bool) -> Workload:
    """N masked networks trained together (one vmapped step) vs one after another.

    ``jax_vmap``   ``jit(vmap(train_step), donate_argnums=0)`` on stacked states, per-seed
                   batches (N, 128, ...): what ``fit(seeds=...)`` compiles.
    ``jax_loop``   for each network, ``steps`` calls of the jitted single step.
    ``torch_loop`` the same with PyTorch masked modules.
    """
    name, n, steps = spec["model"], spec["n"], spec["steps"]
    model, tx = models.get(name), optimizer()
    pairs = [masked_state(name, tx, seed=s) for s in range(n)]
    states = [st for _, st in pairs]
    data = [random_batch(name, TRAIN_BATCH, 10 + s) for s in range(n)]
    xs = jnp.asarray(np.stack([d[0] for d in data]))
    ys = jnp.asarray(np.stack([d[1] for d in data]))
    key = jax.random.key(0)
    train_step = make_train_step(model, tx)
    vstep = jax.jit(jax.vmap(train_step, in_axes=(0, 0, 0, None)), donate_argnums=0)
    step = jax.jit(train_step, donate_argnums=0)
    holder = {"stacked": seeds.stack(states), "list": [_copy(s) for s in states]}

    def vmapped():
        s = holder["stacked"]
        for _ in range(steps):
            s, _ = vstep(s, xs, ys, key)
        holder["stacked"] = s
        return s.params

    def loop():
        out = []
        for i in range(n):
            s = holder["list"][i]
            for _ in range(steps):
                s, _ = step(s, xs[i], ys[i], key)
            holder["list"][i] = s
            out.append(s.params)
        return out

    impls: dict[str, Thunk] = {"jax_vmap": vmapped, "jax_loop": loop}
    if use_torch:
        import torch

        from benchmarks import torch_ref

        tms, opts, tdata = [], [], []
        for i, (v, _) in enumerate(pairs):
            tm = torch_ref.load_flax(torch_ref.build(name), v)
            torch_ref.random_masks(tm, SPARSITY, seed=i)
            tms.append(tm)
            opts.append(torch_ref.make_optimizer(tm, LR, MOMENTUM, WEIGHT_DECAY))
            tdata.append((torch_ref.to_nchw(data[i][0]),
                          torch.from_numpy(np.asarray(data[i][1], np.int64))))

        def torch_loop():
            for tm, opt, (tx_, ty_) in zip(tms, opts, tdata, strict=True):
                for _ in range(steps):
                    loss = torch_ref.train_step(tm, opt, tx_, ty_)
            return loss

        impls["torch_loop"] = torch_loop
    notes = {"batch": TRAIN_BATCH, "steps_per_call": steps, "networks": n}
    return Workload(impls, lambda impl, out: None, notes)


# ---------------------------------------------------------------------------------------------
# Conv weight-gradient lowerings, layer by layer (ResNet-20's shapes, batch 128).
# ---------------------------------------------------------------------------------------------

RESNET20_CONV_SHAPES = ((32, 16), (16, 32), (8, 64))  # (H = W, C = O) of each stage


def build_conv(spec: dict[str, Any], use_torch: bool) -> Workload:
    """dL/dw of one 3x3 stride-1 conv: XLA's lowering vs im2col+matmul vs 9 shifted matmuls."""
    del use_torch
    impls: dict[str, Thunk] = {}
    notes: dict[str, Any] = {"batch": TRAIN_BATCH}
    ref: dict[str, Any] = {}
    for h, c in spec.get("shapes", RESNET20_CONV_SHAPES):
        k = jax.random.split(jax.random.key(h * 1000 + c), 3)
        x = jax.random.normal(k[0], (TRAIN_BATCH, h, h, c))
        w = jax.random.normal(k[1], (3, 3, c, c)) * 0.1
        g = jax.random.normal(k[2], (TRAIN_BATCH, h, h, c))
        xla = jax.jit(lambda x, w, g: jax.vjp(lambda w_: prototypes.xla_conv(x, w_, 1, 1),
                                              w)[1](g)[0])
        impls[f"jax_xla_wgrad/h{h}c{c}"] = functools.partial(xla, x, w, g)
        for variant, f in prototypes.WGRADS.items():
            jf = jax.jit(functools.partial(f, stride=1, pad=1, kh=3, kw=3))
            impls[f"proto_{variant}/h{h}c{c}"] = functools.partial(jf, x, g)
        ref[f"h{h}c{c}"] = None

    def check(impl: str, out: Any) -> None:
        shape = impl.split("/")[1]
        if impl.startswith("jax_xla"):
            ref[shape] = out
            return
        err = float(jnp.max(jnp.abs(out - ref[shape])) / jnp.max(jnp.abs(ref[shape])))
        notes[f"{impl}_max_rel_err"] = err
        if err > 1e-4:
            raise AssertionError(f"{impl}: weight gradient off by {err:.2e} (relative)")

    return Workload(impls, check, notes)


BUILDERS = {
    "score": build_score,
    "train": build_train,
    "train_seeds": build_train_seeds,
    "conv": build_conv,
}


def _single_threaded(fn: Thunk) -> Thunk:
    """Run a PyTorch thunk with ``torch.set_num_threads(1)`` (restored after)."""
    import torch

    def thunk():
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn()
        finally:
            torch.set_num_threads(n)

    return thunk


def build(spec: dict[str, Any], use_torch: bool) -> Workload:
    """Build a workload; with torch, every ``torch_*`` implementation also gets a ``*_1t`` twin
    run single-threaded (PyTorch's OpenMP pool degrades badly when another process holds a core
    of a 2-core machine; the targets compare against the faster of the two)."""
    if spec["kind"] not in BUILDERS:
        raise ValueError(f"unknown workload kind {spec['kind']!r}; valid: {sorted(BUILDERS)}")
    wl = BUILDERS[spec["kind"]](spec, use_torch)
    if use_torch and spec.get("torch_1thread", True):
        for name in [k for k in wl.impls if k.startswith("torch")]:
            wl.impls[f"{name}_1t"] = _single_threaded(wl.impls[name])
    return wl
