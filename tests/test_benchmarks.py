"""Smoke tests of the benchmark suite (``benchmarks/``); PyTorch is optional and skipped cleanly."""

from __future__ import annotations

import functools
import json
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


def test_conv_wgrad_prototype_matches_xla():
    k = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(k[0], (2, 6, 6, 4))
    w = jax.random.normal(k[1], (3, 3, 4, 5))
    def loss(conv, x_, w_):
        return jnp.sum(jnp.sin(conv(x_, w_)))

    for stride in (1, 2):
        xla = functools.partial(prototypes._conv, stride=stride, pad=1)
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


def test_quick_run_without_torch(tmp_path):
    """One tiny workload through the real entry point, in subprocesses, torch switched off."""
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "benchmarks.run", "--quick", "--only",
           "score/lenet_300_100/snip/N=1", "--no-torch", "--no-memory", "--repeats", "1",
           "--out", str(out)]
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
    assert set(res["results"]) == {"jax_multi", "ref_multi_sorttopk"}
    assert res["results"]["jax_multi"]["steady_compiles"] == 0
    assert res["notes"]["ref_multi_sorttopk_mask_entries_differing_from_jax_multi"] == 0


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
