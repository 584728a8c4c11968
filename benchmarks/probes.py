"""Small standalone probes quoted in docs/benchmarks.md (outside the interleaved harness).

    python -m benchmarks.probes peak                  # float32 GEMM peak, XLA and PyTorch
    python -m benchmarks.probes strategies [N] [what] [flush] [cos-off]  # map, loop, vmap, ...
    python -m benchmarks.probes shared-batch [N]      # one scoring batch for all seeds vs PyTorch
    python -m benchmarks.probes topk [--out F.json]   # global top-k of 266,610 scores, 3 ways
    python -m benchmarks.probes convs                 # ResNet-20's convs and SNIP, XLA vs PyTorch
    python -m benchmarks.probes synflow-agreement [--out F.json]  # SynFlow masks, both sides
    python -m benchmarks.probes train-groups [--out F.json]  # masked Adam step, 1..32 networks

``what`` is ``scores`` (SNIP alone), ``prune`` (SNIP + 90% global mask) or ``synflow`` (100
rounds + mask, no vmap or chunks), on LeNet-300-100; ``flush`` overwrites 128 MB before every
call; ``cos-off`` adds ``lax.map`` compiled with ``compiler_options=`` turning XLA:CPU's
concurrency-optimized scheduler off (to compare with setting it in ``XLA_FLAGS``). Each probe
prints the median of interleaved rounds in a fresh seeded order (``peak``: the best of 5), 10 ms
idle before each call in ``strategies``; no PyTorch in ``strategies``.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import workloads as W
from jaxprune import seeds

MLP = "lenet_300_100"


def interleaved_medians(impls: dict[str, Callable], rounds: int, stat=np.median,
                        before: Callable[[], None] | None = None,
                        spread: bool = False) -> dict[str, float]:
    """Seconds per call of each implementation: ``stat`` (the median) over ``rounds``
    interleaved rounds, a fresh seeded order each, after one untimed warm-up call each;
    ``before`` runs (untimed) before every call. With ``spread``, also prints every
    implementation's min and max."""
    for f in impls.values():
        jax.block_until_ready(f())
    times: dict[str, list[float]] = {k: [] for k in impls}
    names, rng = list(impls), np.random.default_rng(0)
    for _ in range(rounds):
        for i in rng.permutation(len(names)):
            if before is not None:
                before()
            t = time.perf_counter()
            jax.block_until_ready(impls[names[i]]())
            times[names[i]].append(time.perf_counter() - t)
    if spread:
        for k, v in times.items():
            print(f"  {k}: min {min(v):.4g} s, max {max(v):.4g} s over {len(v)} calls")
    return {k: float(stat(v)) for k, v in times.items()}


def peak() -> None:
    import torch

    for n in (1024, 2048):
        a = jnp.ones((n, n), jnp.float32)
        ta = torch.ones(n, n)
        best = interleaved_medians({"xla": jax.jit(lambda a=a: a @ a),
                                    "torch": lambda ta=ta: ta @ ta}, 5, stat=np.min)
        print(n, {k: f"{2 * n**3 / v / 1e9:.0f} GFLOP/s (best of 5)" for k, v in best.items()})


def strategies(n: int = 32, what: str = "scores", flush: bool = False,
               cos_off: bool = False) -> None:
    """``what``: ``scores`` (SNIP scores), ``prune`` (SNIP + 90% mask) or ``synflow`` (100
    rounds); ``flush``: overwrite 128 MB before every call (cold caches); ``cos_off``: also
    ``lax.map`` compiled without the concurrency-optimized scheduler, per program."""
    if what == "synflow":
        fn = W.prune_fn(MLP, "synflow", 100, "float64", "probe")
    elif what == "prune":
        fn = W.prune_fn(MLP, "snip", 1, "float32", "probe")
    else:
        fn = W.score_only_fn(MLP, "snip")
    v, b, k = W.score_inputs(MLP, n)
    single = jax.jit(fn)
    per = [(seeds.unstack(v, i), seeds.unstack(b, i), k[i]) for i in range(n)]
    impls = {s: (lambda s=s: seeds.map_stacked(fn, v, b, k, strategy=s)) for s in ("map", "loop")}
    impls["presplit_loop"] = lambda: [single(*a) for a in per]
    if what != "synflow":  # batched variants (100 vmapped SynFlow rounds would dominate the run)
        impls["vmap"] = lambda: seeds.map_stacked(fn, v, b, k, strategy="vmap")
        impls["chunks_of_4"] = lambda: seeds.map_stacked(fn, v, b, k, strategy="chunked",
                                                         chunk_size=4)
    if cos_off:
        off = {"xla_cpu_enable_concurrency_optimized_scheduler": False}
        mapped = jax.jit(lambda v, b, k: jax.lax.map(lambda a: fn(*a), (v, b, k)),
                         compiler_options=off)
        impls["map_cos_off"] = lambda: mapped(v, b, k)
    junk = np.ones(16 * 2**20)

    def before() -> None:
        if flush:
            junk.__iadd__(1.0)
        time.sleep(0.01)

    rounds = 6 if what == "synflow" else 15
    for name, t in interleaved_medians(impls, rounds, before=before, spread=True).items():
        print(f"{name:14s} {t * 1e3:8.1f} ms")


def shared_batch(n: int = 32) -> None:
    import torch

    from benchmarks import torch_ref

    v, b, k = W.score_inputs(MLP, n)
    b0 = seeds.unstack(b, 0)  # one scoring batch for every seed
    fn = W.score_only_fn(MLP, "snip")
    axes = (0, None, 0)
    impls = {f"shared_{s}": (lambda s=s: seeds.map_stacked(fn, v, b0, k, in_axes=axes,
                                                          strategy=s))
             for s in ("vmap", "map", "loop", "auto")}
    tm = [torch_ref.load_flax(torch_ref.build(MLP), seeds.unstack(v, i)) for i in range(n)]
    tx = torch_ref.to_nchw(np.array(b0[0]))
    ty = torch.from_numpy(np.asarray(b0[1], np.int64))
    impls["torch_loop"] = lambda: [torch_ref.snip_scores(m.eval(), tx, ty) for m in tm]
    print("auto picks", seeds.choose_strategy(fn, (v, b0, k), in_axes=axes))
    for name, t in interleaved_medians(impls, 7).items():
        print(f"{name:14s} {t * 1e3:8.1f} ms")


def topk(n: int = 266_610) -> dict:
    """``masks.keep_top`` (sort-free) vs ``masks.keep_top_sort`` vs ``jax.lax.top_k``
    (``prototypes.keep_top_lax``, static k) on n standard-normal scores, keeping 10%, float32
    and float64, timed interleaved. The sort's masks are asserted equal to ``keep_top``'s; for
    ``lax.top_k`` the differing mask entries are counted on these scores and on inputs with
    many ties: the scores rounded to integers (``ties``: every zero ``+0.0``; ``ties_pm0``: the
    zeros alternate ``+0.0``/``-0.0``), keeping half (the threshold falls among the zeros), and
    with 1 score in 13 NaN (``nan``). Returns the figures (``--out`` writes them as JSON)."""
    from benchmarks import prototypes
    from jaxprune import masks

    out: dict = {"n": n, "keep": n // 10, "median_ms": {}, "lax_top_k_differing_entries": {}}
    for dtype in ("float32", "float64"):
        with jax.enable_x64(dtype == "float64"):
            x = jax.random.normal(jax.random.key(0), (n,), jnp.dtype(dtype))
            k = jnp.int32(n // 10)
            free, sort = jax.jit(masks.keep_top), jax.jit(masks.keep_top_sort)
            lax_top = jax.jit(prototypes.keep_top_lax, static_argnums=1)
            impls = {"sort_free": functools.partial(free, x, k),
                     "sort": functools.partial(sort, x, k),
                     "lax_top_k": functools.partial(lax_top, x, n // 10)}
            assert bool(jnp.all(impls["sort_free"]() == impls["sort"]()))
            r = jnp.round(x)
            zero = jnp.where(jnp.arange(n) % 2 == 0, 0.0, -0.0).astype(x.dtype)
            cases = {"normal": (x, n // 10),
                     "ties": (jnp.where(r == 0, jnp.zeros_like(r), r), n // 2),
                     "ties_pm0": (jnp.where(r == 0, zero, r), n // 2),
                     "nan": (x.at[::13].set(jnp.nan), n // 10)}
            diffs = {}
            for what, (y, kk) in cases.items():
                diffs[what] = int(jnp.sum(lax_top(y, kk) != free(y, jnp.int32(kk))))
                print(f"{dtype:8s} lax_top_k vs sort_free, {what}, keep {kk}: {diffs[what]} mask "
                      "entries differ")
            out["lax_top_k_differing_entries"][dtype] = diffs
            times = interleaved_medians(impls, 21)
            out["median_ms"][dtype] = {k_: v * 1e3 for k_, v in times.items()}
            for name, t in times.items():
                print(f"{dtype:8s} {name:10s} {t * 1e3:8.2f} ms")
    return out


def synflow_agreement(model: str = "resnet20", rounds: tuple[int, ...] = (1, 10, 100)) -> dict:
    """Where jaxprune's and the reference's SynFlow masks part, at equal and unequal precision.

    One seed of ``model`` pruned to 90% by SynFlow with 1, 10 and 100 rounds by jaxprune in
    float64 (``jax_f64``, the default) and float32 (``jax_f32``) and by the PyTorch reference in
    float32 (``torch_f32``) and float64 (``torch_f64``), the same weights everywhere
    (``workloads.build_score``'s implementations); prints the mask entries on which each pair
    differs. Also counts the rounds whose keep count differs between the two sides: the
    reference prunes ``int((1 - density) * n)`` weights per round (truncation), jaxprune
    ``round`` (``schedules.keep_counts``); and runs the float64 reference once more with
    jaxprune's rounding (``torch_f64_round``: ``torch_ref.prune_loop(..., count="round")``)."""
    import copy

    import torch

    from benchmarks import torch_ref
    from jaxprune import masks, schedules

    out: dict = {"model": model, "differing_entries": {}, "rounds_with_other_keep_count": {}}
    params = W.init_variables(model, 0)["params"]
    n = masks.num_prunable(params)
    for r in rounds:
        spec = {"kind": "score", "model": model, "method": "synflow", "n": 1, "rounds": r,
                "prototypes": False, "torch_1thread": False}
        wl = W.build(spec, use_torch=True)
        v, b, _ = W.score_inputs(model, 1)
        t64 = torch_ref.load_flax(torch_ref.build(model), seeds.unstack(v, 0)).double()
        tb = (torch_ref.to_nchw(np.asarray(b[0][0])), torch.from_numpy(np.asarray(b[1][0],
                                                                                  np.int64)))
        rounded = torch_ref.prune_loop(copy.deepcopy(t64), "synflow", W.SPARSITY, tb,
                                       W.torch_input_shape(model), r, count="round")
        got = {"jax_f64": W.flat_kernels(seeds.unstack(jax.block_until_ready(
                   wl.impls["jax_multi"]()), 0)),
               "jax_f32": W.flat_kernels(seeds.unstack(jax.block_until_ready(
                   wl.impls["jax_multi_f32"]()), 0)),
               "torch_f32": torch_ref.masks_to_flax(model, wl.impls["torch_loop"]()[0]),
               "torch_f64": torch_ref.masks_to_flax(model, wl.impls["torch_loop_f64"]()[0]),
               "torch_f64_round": torch_ref.masks_to_flax(model, rounded)}
        pairs = (("jax_f64", "torch_f64"), ("jax_f32", "torch_f32"), ("jax_f64", "torch_f32"),
                 ("jax_f32", "jax_f64"), ("torch_f32", "torch_f64"),
                 ("jax_f64", "torch_f64_round"))
        diffs = {f"{a}/{b}": sum(int(np.sum(got[a][p] != got[b][p])) for p in got[a])
                 for a, b in pairs}
        ours = schedules.keep_counts(params, W.SPARSITY, rounds=r, schedule="exponential")
        ours = np.atleast_1d(ours)
        theirs = np.array([n - int((1.0 - (1.0 - W.SPARSITY) ** ((e + 1) / r)) * n)
                           for e in range(r)])
        other = int(np.sum(ours != theirs))
        out["differing_entries"][str(r)] = diffs
        out["rounds_with_other_keep_count"][str(r)] = other
        print(f"{model}, {r} round(s), {n} prunable weights: differing mask entries "
              + ", ".join(f"{k} {v}" for k, v in diffs.items())
              + f"; keep count differs from the reference's in {other} of {r} rounds")
    return out


def convs(batch: int = 100) -> None:
    """ResNet-20's three 3x3 conv shapes (stride 1, NHWC): forward, input gradient and weight
    gradient in XLA vs PyTorch's ``conv2d`` / ``convolution_backward`` (NCHW), per call; then
    ResNet-20 SNIP scores, forward and forward+backward on one seed, both sides."""
    import torch
    import torch.nn.functional as F

    from benchmarks import torch_ref
    from jaxprune import models
    from jaxprune.studies import pai
    from jaxprune.train import split_variables

    dn = ("NHWC", "HWIO", "NHWC")

    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn)

    fwd = jax.jit(conv)
    dgrad = jax.jit(lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0])
    wgrad = jax.jit(lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0])
    back = torch.ops.aten.convolution_backward
    for h, c in ((32, 16), (16, 32), (8, 64)):
        x, g = (jax.random.normal(jax.random.key(i), (batch, h, h, c)) for i in (0, 2))
        w = 0.1 * jax.random.normal(jax.random.key(1), (3, 3, c, c))
        tx, tg = torch.randn(batch, c, h, h), torch.randn(batch, c, h, h)
        tw = torch.randn(c, c, 3, 3)

        def tback(which, tx=tx, tg=tg, tw=tw):
            return back(tg, tx, tw, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, which)

        impls = {"fwd": functools.partial(fwd, x, w), "dgrad": functools.partial(dgrad, x, w, g),
                 "wgrad": functools.partial(wgrad, x, w, g),
                 "torch_fwd": lambda tx=tx, tw=tw: F.conv2d(tx, tw, padding=1),
                 "torch_dgrad": functools.partial(tback, [True, False, False]),
                 "torch_wgrad": functools.partial(tback, [False, True, False])}
        times = interleaved_medians(impls, 9)
        print(f"H={h} C={c}: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in times.items()))

    name = "resnet20"
    v, b, k = W.score_inputs(name, 1)
    v0, b0 = seeds.unstack(v, 0), seeds.unstack(b, 0)
    params, state = split_variables(v0)
    fns = pai.model_fns(models.get(name), state)
    apply_fn, loss_fn = fns.apply_fn, fns.loss_fn
    forward, grad = jax.jit(apply_fn), jax.jit(jax.grad(loss_fn))
    snip = jax.jit(W.score_only_fn(name, "snip"))
    tm = torch_ref.load_flax(torch_ref.build(name), v0).eval()
    tx = torch_ref.to_nchw(np.array(b0[0]))
    ty = torch.from_numpy(np.asarray(b0[1], np.int64))

    def torch_forward():
        with torch.no_grad():
            return tm(tx)

    def torch_backward():
        tm.zero_grad()
        F.cross_entropy(tm(tx), ty).backward()

    impls = {"fwd": functools.partial(forward, params, b0[0]),
             "fwd_bwd": functools.partial(grad, params, b0),
             "snip": functools.partial(snip, v0, b0, k[0]), "torch_fwd": torch_forward,
             "torch_fwd_bwd": torch_backward,
             "torch_snip": lambda: torch_ref.snip_scores(tm, tx, ty)}
    times = interleaved_medians(impls, 9)
    print(f"ResNet-20, batch {batch}: " + ", ".join(f"{k} {v * 1e3:.1f} ms"
                                                 for k, v in times.items()))


def train_groups(sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32), batch: int = 60,
                 steps: int = 50) -> dict:
    """The library's masked LeNet-300-100 Adam step (``train.train_programs``: what ``fit``
    runs each step, batch 60 as the lottery study) for G networks vmapped together: ms per
    network step. ``fit(strategy="auto")`` groups stacked networks by
    ``train.loop.GROUP_SIZE``; this is the measurement that size rests on."""
    from jaxprune import masks, models
    from jaxprune.studies import pai
    from jaxprune.train import Split, TrainConfig, split_variables, train_programs

    model = models.get(MLP)
    cfg = TrainConfig(batch_size=batch, optimizer="adam", learning_rate=1.2e-3,
                      schedule="constant", normalize=False)
    x = jnp.asarray(np.random.default_rng(0).random((6000, 28, 28, 1), np.float32))
    y = jnp.asarray(np.arange(6000) % 10, jnp.int32)
    rng = np.random.default_rng(1)
    impls, states = {}, {}
    for g in sizes:  # 6000 examples: 100 steps per epoch
        progs = train_programs(model, cfg, Split(x, y), stacked=g > 1)
        init = pai.init_seeds(model, (28, 28, 1), list(range(g)))
        mask = jax.vmap(masks.ones_like)(init["params"])
        if g == 1:
            init, mask = seeds.unstack(init, 0), seeds.unstack(mask, 0)
        params, model_state = split_variables(init)
        lead = (g,) if g > 1 else ()
        idx = [jnp.asarray(rng.integers(0, 6000, (*lead, batch)), jnp.int32)
               for _ in range(steps)]
        kd = jax.random.key_data(jax.random.split(jax.random.key(0), max(g, 2))[:g])
        kd = kd if g > 1 else kd[0]
        states[g] = (progs.init(params, model_state, mask, 0),
                     {k: jnp.zeros(lead) for k in ("loss", "correct", "count")})

        def run(g=g, progs=progs, idx=idx, kd=kd):
            state, sums = states[g]
            for i in idx:
                state, sums = progs.step(state, sums, x, y, i, kd)
            states[g] = (state, sums)
            return state

        impls[f"G={g}"] = run
    times = interleaved_medians(impls, 7, spread=True)
    per = {k: 1e3 * v / steps / int(k[2:]) for k, v in times.items()}
    print(f"ms per network step (batch {batch}, {steps} steps per call): "
          + ", ".join(f"{k} {v:.3f}" for k, v in per.items()))
    return {"batch": batch, "steps": steps, "ms_per_network_step": per}


if __name__ == "__main__":
    from benchmarks import harness

    probe, args = sys.argv[1], sys.argv[2:]
    out_path = None
    if "--out" in args:  # topk, synflow-agreement: the figures, machine, versions, load as JSON
        i = args.index("--out")
        out_path, args = args[i + 1], args[:i] + args[i + 2:]
    head = {"command": " ".join(["python -m benchmarks.probes", *sys.argv[1:]]),
            "date": harness.now(), "machine": harness.machine(),
            "loadavg_start": harness.loadavg()}
    print(f"# {head['date']}  {head['machine']['cpu_model']}  {head['machine']['cpu_count']} "
          f"cores  load {head['loadavg_start']}", flush=True)
    if probe == "peak":
        peak()
    elif probe == "strategies":
        strategies(int(args[0]) if args else 32, args[1] if len(args) > 1 else "scores",
                   flush="flush" in args[2:], cos_off="cos-off" in args[2:])
    elif probe == "shared-batch":
        shared_batch(int(args[0]) if args else 32)
    elif probe in ("topk", "synflow-agreement", "train-groups"):
        figures = {"topk": topk, "train-groups": train_groups}.get(
            probe, lambda: synflow_agreement(*args[:1]))()
        head["loadavg_end"] = harness.loadavg()
        print(f"# load at end {head['loadavg_end']}")
        if out_path:
            import json

            report = {**head, "versions": harness.versions(), "probe": probe, **figures}
            with open(out_path, "w") as f:
                json.dump(report, f, indent=1, default=str)
    elif probe == "convs":
        convs()
    else:
        raise SystemExit(f"unknown probe {probe!r}: peak, strategies, shared-batch, topk, convs, "
                         "synflow-agreement, train-groups")
