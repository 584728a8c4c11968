"""Smoke tests of the benchmark suite (``benchmarks/``); PyTorch is optional and skipped cleanly."""

from __future__ import annotations

import functools
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune import masks

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # benchmarks/ is a top-level package, not installed
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import harness, prototypes, run  # noqa: E402


@pytest.mark.compiles
def test_measure_interleaves_and_counts_recompiles():
    f = jax.jit(lambda x: x * 2)
    x = jnp.ones(3)
    res = harness.measure({"jax_a": lambda: f(x), "other": lambda: 1}, repeats=2, gap_s=0.0,
                          min_round_time_s=0.0)
    assert set(res) == {"jax_a", "other"}
    assert len(res["jax_a"]["steady_s"]) == 2
    assert res["jax_a"]["first_compiles"] >= 1
    assert res["jax_a"]["steady_compiles"] == 0

    def fresh():  # a new jit object per call: a recompile every call
        return jax.jit(lambda y: y + 1)(x)

    with pytest.raises(AssertionError, match="compiled"):
        harness.measure({"jax_fresh": fresh}, repeats=1, gap_s=0.0, min_round_time_s=0.0)


def test_implementations_in_another_process():
    """The isolation machinery (what keeps PyTorch out of jax's process), exercised without
    PyTorch: a spawned side serves the loop of a tiny workload, times its own calls, runs its
    checks against the reference jax output sent to it, and reports them in its notes."""
    from benchmarks import isolate, workloads

    spec = {"kind": "score", "model": "lenet_300_100", "method": "snip", "n": 2,
            "scores_only": False, "prototypes": False}
    wl = workloads.build(spec, use_torch=False)
    side = isolate.TorchSide(spec, prefix="jax_loop", use_torch=False)
    try:
        assert side.names == ["jax_loop"]
        impls = {"jax_multi": wl.impls["jax_multi"], "remote_loop": side.thunk("jax_loop")}
        seen = []

        def after_first(name, out):
            seen.append((name, type(out).__name__))
            if not isinstance(out, isolate.Timed):
                wl.check(name, out)
                side.reference(name, out)

        res = harness.measure(impls, repeats=2, after_first=after_first, gap_s=0.0,
                              min_round_time_s=0.0)
        assert [name for name, _ in seen] == ["jax_multi", "remote_loop"]
        assert seen[0][1] != "Timed" and seen[1][1] == "Timed"
        assert all(t > 0 for t in res["remote_loop"]["steady_s"])
        notes = side.notes()
        # the side compared its loop's masks with the jax_multi masks it was sent: identical
        assert notes["jax_loop_mask_entries_differing_from_jax_multi"] == 0
        with pytest.raises(RuntimeError, match="KeyError"):
            side.thunk("no_such_impl")()
    finally:
        side.close()


def test_sort_topk_reference_matches_keep_top():
    """The reference row's sorting top-k gives the library's masks (ties, NaN, dead weights)."""
    rng = np.random.default_rng(0)
    special = np.array([0.0, -0.0, 1.0, -1.0, 2.5, np.inf, -np.inf, np.nan], np.float32)
    n = 37
    want_fn, got_fn = jax.jit(masks.keep_top), jax.jit(masks.keep_top_sort)
    for trial in range(30):
        vals = rng.choice(special, n) if trial % 2 else rng.standard_normal(n).astype(np.float32)
        alive = jnp.asarray(rng.random(n) < 0.6) if trial % 3 else None
        k = jnp.int32(rng.integers(0, n + 1))
        np.testing.assert_array_equal(np.asarray(got_fn(jnp.asarray(vals), k, alive)),
                                      np.asarray(want_fn(jnp.asarray(vals), k, alive)))


def test_lax_topk_reference_and_where_its_order_differs():
    """``lax.top_k`` as a mask (the ``ref_multi_laxtopk`` row): the library's masks on distinct
    scores and on ties among equal numbers (both keep the lower index), different ones where the
    two orders differ: -0.0 vs +0.0 (lax.top_k: -0.0 lower) and NaN (lax.top_k: highest)."""
    n = 64
    x = jnp.asarray(np.random.default_rng(1).standard_normal(n).astype(np.float32))
    lax_keep = jax.jit(prototypes.keep_top_lax, static_argnums=1)

    def diff(y, k):
        return int(jnp.sum(lax_keep(y, k) != masks.keep_top(y, jnp.int32(k))))

    ties = jnp.asarray(np.repeat([3.0, 1.0, 0.0, -2.0], 16).astype(np.float32))
    for k in (0, 1, 7, 16, 20, 40, n):
        assert diff(x, k) == 0 and diff(ties, k) == 0
    pm0 = jnp.zeros(n).at[1::2].set(-0.0)  # +0.0, -0.0, +0.0, ...
    # keep_top: the first half (all equal); lax.top_k: the +0.0 ones; half of each differs
    assert diff(pm0, n // 2) == n // 2
    nan = x.at[::8].set(jnp.nan)
    assert diff(nan, 8) == 16  # lax.top_k keeps the 8 NaNs, keep_top the 8 largest numbers

    # Swapped into the library's one-shot global top-k (a two-leaf tree), under jit.
    scores = {"a": {"kernel": x[:40].reshape(8, 5)}, "b": {"kernel": x[40:].reshape(4, 6)}}
    keep = functools.partial(masks.mask_by_keep_counts, per_layer=False)
    want = keep(scores, jnp.int32(13))
    with prototypes.lax_topk(13):
        got = jax.jit(lambda s: keep(s, jnp.int32(13)))(scores)
        with pytest.raises(ValueError, match="where 12 are kept"):  # a concrete count differs
            keep(scores, jnp.int32(12))
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), got, want))
    assert int(sum(jnp.sum(m) for m in jax.tree.leaves(got))) == 13


def test_synflow_same_precision_rows():
    """The SynFlow workload's equal-precision rows: jaxprune in float32 beside its float64
    ``jax_multi`` and, with PyTorch, the reference in float64 beside its float32 loop; each
    pair's masks compared (LeNet-300-100, 2 rounds)."""
    from benchmarks import workloads

    use_torch = workloads.torch_available()
    spec = {"kind": "score", "model": "lenet_300_100", "method": "synflow", "n": 1,
            "rounds": 2, "prototypes": False, "torch_1thread": False}
    wl = workloads.build(spec, use_torch=use_torch)
    want = {"jax_multi", "jax_multi_f32"} | ({"torch_loop", "torch_loop_f64"} if use_torch
                                               else set())
    assert set(wl.impls) == want
    for name in ("jax_multi", "jax_multi_f32", "torch_loop", "torch_loop_f64"):  # refs first
        if name in want:
            wl.check(name, harness.block(wl.impls[name]()))
    notes = wl.notes
    assert notes["synflow_dtype"] == "float64"
    # the same network pruned in float32 and float64: all but a few of 266,610 entries agree
    assert 0 <= notes["jax_multi_f32_mask_entries_differing_from_jax_multi"] < 100
    if use_torch:
        for key in ("torch_mask_agreement_seed0",  # float32 vs float64 (the existing column)
                    "torch_loop_vs_jax_multi_f32_mask_agreement_seed0",  # float32 vs float32
                    "torch_loop_f64_vs_jax_multi_mask_agreement_seed0"):  # float64 vs float64
            assert notes[key] > 0.999, (key, notes[key])
    off = workloads.build({**spec, "precision": False}, use_torch=False)
    assert set(off.impls) == {"jax_multi"}


def test_conv_wgrad_prototype_matches_xla():
    k = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(k[0], (2, 6, 6, 4))
    w = jax.random.normal(k[1], (3, 3, 4, 5))
    def loss(conv, x_, w_):
        return jnp.sum(jnp.sin(conv(x_, w_)))

    for stride in (1, 2):
        xla = functools.partial(prototypes.xla_conv, stride=stride, pad=1)
        ref = jax.grad(functools.partial(loss, xla), argnums=(0, 1))(x, w)
        for wgrad in prototypes.WGRADS:
            conv = prototypes.make_conv(stride, 1, wgrad)
            got = jax.grad(functools.partial(loss, conv), argnums=(0, 1))(x, w)
            for g, r in zip(got, ref, strict=True):
                np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)


def test_tables_and_targets_from_a_fake_result():
    fake = {"id": "score/lenet_300_100/snip/N=32/scores_only", "loadavg_before": [1.0],
            "loadavg_after": [1.0],
            "spec": {"kind": "score", "model": "lenet_300_100", "method": "snip", "n": 32,
                     "scores_only": True},
            "notes": {"strategy": "map", "rounds": 1},
            "results": {k: {"median_s": v, "compile_s": 0.1} for k, v in
                        {"jax_multi": 0.1, "jax_loop": 0.2, "torch_loop": 0.5}.items()}}
    text = run.tables([fake])
    assert "lenet_300_100" in text and "snip (scores)" in text
    status = {t["target"]: t for t in run.targets([fake])}
    t = status["multi-seed MLP SNIP, 32 seeds >= 4x faster than the PyTorch loop (scores only)"]
    assert t["status"] == "met" and t["ratio"] == pytest.approx(5.0)
    assert "| model |" in run.tables([fake], markdown=True)

    def row(wid, method, n, times, notes=None):
        return {"id": wid, "loadavg_before": [1.0], "loadavg_after": [1.0],
                "spec": {"kind": "score", "model": "lenet_300_100", "method": method, "n": n},
                "notes": {"strategy": "loop", "rounds": 1, **(notes or {})},
                "results": {k: {"median_s": v, "compile_s": 0.1} for k, v in times.items()}}

    snip = row("score/lenet_300_100/snip/N=8", "snip", 8,
               {"jax_multi": 0.1, "jax_loop": 0.09, "ref_multi_sorttopk": 2.0,
                "ref_multi_laxtopk": 0.3},
               {"ref_multi_laxtopk_mask_entries_differing_from_jax_multi": 0})
    synflow = row("score/lenet_300_100/synflow/N=1", "synflow", 1,
                  {"jax_multi": 0.2, "jax_multi_f32": 0.1, "torch_loop": 0.4,
                   "torch_loop_1t": 0.3, "torch_loop_f64": 0.8, "torch_loop_f64_1t": 0.9},
                  {"torch_loop_f64_vs_jax_multi_mask_agreement_seed0": 1.0})
    md = run.tables([fake, snip, synflow], markdown=True)
    assert "| lenet_300_100 | snip | 8 | 0.1 | 2 | 0.3 | 20 | 3 | - | 0 | 1.0/1.0 |" in md
    # torch/jax f64 = 0.8 / 0.2, torch/jax f32 = 0.3 (the faster thread count) / 0.1
    assert "| lenet_300_100 | 1 | 1 | 0.2 | 0.8 | 0.1 | 0.3 | 4 | 3 | 1.5 | 1 |" in md
    # "never slower": every N > 1 row must reach 1; one row at 0.9 fails it and is named
    t = {t["target"]: t for t in run.targets([fake, snip, synflow])}[
        "multi-seed scoring never slower than the jitted JAX loop (every model)"]
    assert t["status"] == "not met" and t["ratio"] == pytest.approx(0.9)
    assert "1 of 2 below 1: score/lenet_300_100/snip/N=8 0.9" in t["detail"]
    table = run.targets_table(run.targets([fake, snip]), markdown=True)
    assert "| not met |" in table and table.startswith("| target | measured | bar | status |")


def test_quick_run_without_torch(tmp_path):
    """One tiny workload through the real entry point, in subprocesses, torch switched off."""
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "benchmarks.run", "--quick", "--only",
           "score/lenet_300_100/snip/N=1", "--no-torch", "--no-memory", "--repeats", "1",
           "--out", str(out), "--markdown", str(tmp_path / "bench.md")]
    p = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "Scoring" in p.stdout
    report = json.loads(out.read_text())
    for key in ("command", "date", "machine", "versions", "loadavg_start", "targets"):
        assert key in report
    assert report["machine"]["cpu_count"] >= 1
    assert report["versions"]["jax"] == jax.__version__
    (res,) = report["results"]
    assert "error" not in res, res.get("error")
    assert res["torch"] is False
    assert set(res["results"]) == {"jax_multi", "ref_multi_sorttopk", "ref_multi_laxtopk"}
    assert res["results"]["jax_multi"]["steady_compiles"] == 0
    assert res["results"]["ref_multi_laxtopk"]["steady_compiles"] == 0
    assert res["notes"]["ref_multi_sorttopk_mask_entries_differing_from_jax_multi"] == 0
    assert res["notes"]["ref_multi_laxtopk_mask_entries_differing_from_jax_multi"] == 0
    # --markdown carries the targets with their status, as --render does from the JSON
    md = (tmp_path / "bench.md").read_text()
    assert md == run.render(report)
    assert "| target | measured | bar | status | how |" in md and "Top-k references" in md


def test_torch_references_match_the_zoo():
    torch = pytest.importorskip("torch")
    from benchmarks import torch_ref, workloads

    for name, count in (("lenet_300_100", 266_610), ("conv6", 2_262_602), ("resnet20", 269_722)):
        model = torch_ref.build(name)
        assert torch_ref.num_params(model) == count
        variables = workloads.init_variables(name, 0)
        torch_ref.load_flax(model, variables)
        x = np.random.default_rng(0).standard_normal((2, *workloads.input_shape(name)))
        want = jax.jit(lambda v, x_, n=name: workloads.models.get(n).apply(v, x_))(
            variables, jnp.asarray(x, jnp.float32))
        with torch.no_grad():
            got = model.eval()(torch_ref.to_nchw(x)).numpy()
        np.testing.assert_allclose(got, np.asarray(want), rtol=1e-3, atol=1e-4)


DOC = REPO_ROOT / "docs" / "benchmarks.md"


def test_doc_targets_are_the_rendering_of_the_results_json():
    """docs/benchmarks.md's targets table is ``run.targets_table`` of the JSON it names, pasted
    between markers (``python -m benchmarks.run --render FILE``), so the statuses cannot drift
    from the run they quote; and the JSON's stored targets are what ``run.targets`` computes
    from its results today (one definition of each target)."""
    text = DOC.read_text()
    blocks = re.findall(r"<!-- targets of (\S+) -->\n(.*?)\n<!-- /targets -->", text, re.S)
    assert blocks, "no '<!-- targets of FILE -->' block in docs/benchmarks.md"
    for path, table in blocks:
        report = json.loads((REPO_ROOT / path).read_text())
        assert table.strip() == run.targets_table(report["targets"], markdown=True).strip()
        recomputed = run.targets(report["results"])
        for stored, now in zip(report["targets"], recomputed, strict=True):
            assert (stored["target"], stored["status"]) == (now["target"], now["status"])
            assert stored["ratio"] == pytest.approx(now["ratio"])


def _expand_braces(pattern: str) -> list[str]:
    parts = re.split(r"\{([^{}]*)\}", pattern)
    options = [p.split(",") if i % 2 else [p] for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*options)]


def test_doc_names_only_files_in_the_repo():
    """Every file docs/benchmarks.md names exists in the repository (globs and {a,b} match at
    least one file); nothing outside it (``shared/``) is cited."""
    text = DOC.read_text()
    assert "shared/" not in text
    # output names in example commands
    examples = {"bench.json", "bench.md", "topk.json", "strategies.json", "strategies.md"}
    names = set(re.findall(r"[\w./*{},-]*\w\.(?:py|json|md|toml|yml)\b", text))
    assert names
    missing = []
    for name in sorted(names - examples):
        if not any(list(REPO_ROOT.glob(p)) for p in _expand_braces(name)):
            missing.append(name)
    assert not missing, f"docs/benchmarks.md names files not in the repository: {missing}"


def test_strategies_judges_auto_against_the_fastest_and_renders_the_saved_run():
    from benchmarks import strategies

    row = {"model": "m", "method": "magnitude", "n": 8, "rounds": None, "auto": "vmap",
           "strategies": {"vmap": {"median_s": 0.3, "compile_s": 0.5}, "map": {"median_s": 0.1},
                          "chunked": {"median_s": 0.2}, "loop": {"timed_out_after_s": 60.0}}}
    strategies.judge(row)
    assert row["best"] == "map" and not row["auto_ok"] and abs(row["auto_over_best"] - 3) < 1e-9
    row["auto"] = "map"
    assert strategies.judge(row)["auto_ok"]
    table = strategies.markdown({"rows": [row]})
    assert "> 60000 (stopped)" in table and "in 1 of 1 rows" in table
    saved = Path(__file__).parent.parent / "benchmarks/results/2026-12-03-cpu-strategies.json"
    run = json.loads(saved.read_text())
    rendered = strategies.markdown(run)
    assert "auto within 10% of the fastest in 13 of 18 rows" in rendered
    assert rendered in (saved.parent.parent.parent / "docs/benchmarks.md").read_text()


def test_train_seeds_row_trains_the_stacked_seeds():
    from benchmarks import train_seeds

    # the machinery of a row on the cheapest conv net to compile; two batches of 64
    row = train_seeds.row("conv2", 0.25, "loop", 2, images=128)
    assert {k: row[k] for k in ("model", "strategy", "seeds")} == {
        "model": "conv2", "strategy": "loop", "seeds": 2}
    assert row["first_s"] > 0 and row["epoch_s"] > 0


def test_roofline_flop_count_and_fused_snip_equal_the_library():
    """The hand FLOP count (2 per multiply-add; backward: weight gradients of every layer, input
    gradients of all but the first) and the fused-first-layer SNIP prototype against the
    library's SNIP scores on the same batch."""
    from benchmarks import roofline
    from benchmarks import workloads as W
    from jaxprune import seeds

    macs = 784 * 300 + 300 * 100 + 100 * 10
    assert roofline.mlp_flops(1, backward=False) == 2 * macs
    assert roofline.mlp_flops(4, backward=True) == 4 * (2 * macs * 2 + 2 * (300 * 100 + 100 * 10))
    n = 2
    v, b, k = W.score_inputs(roofline.MLP, n)
    b0 = seeds.unstack(b, 0)
    want = seeds.map_stacked(W.score_only_fn(roofline.MLP, "snip"), v, b0, k,
                             in_axes=(0, None, 0), strategy="loop")
    got = roofline.fused_snip(n)(roofline.as_tuples(v), *b0)
    for g, name in zip(got, sorted(want), strict=True):
        np.testing.assert_allclose(g, want[name]["kernel"], rtol=1e-4,
                                   atol=1e-6 * float(jnp.max(want[name]["kernel"])))


@pytest.mark.compiles
def test_compile_time_child_reports_the_first_call():
    from benchmarks import compile_time

    for impl in ("library", "plain"):
        out = compile_time.child("magnitude", 2, impl)
        assert out["compiles"] >= 1 and 0 < out["compile_s"] <= out["first_s"], out
        assert out["steady_s"] > 0


def test_reference_rows_trace_their_own_top_k():
    """`pai.prune` traced inside `prototypes.sort_topk()` carries the sorting top-k even after
    the same configuration was traced outside it (no cached trace replayed)."""
    from benchmarks import workloads as W

    v, b, k = W.score_inputs("lenet_300_100", 1)
    args = (jax.tree.map(lambda a: a[0], v), jax.tree.map(lambda a: a[0], b), k[0])
    main = W.prune_fn("lenet_300_100", "magnitude", 1, "float32", "main")
    ref = W.prune_fn("lenet_300_100", "magnitude", 1, "float32", "sorttopk")
    assert " sort[" not in str(jax.make_jaxpr(main)(*args))
    with prototypes.sort_topk():
        assert " sort[" in str(jax.make_jaxpr(ref)(*args))
