"""The structured-pruning study: the pipeline against its steps by hand, the policy registry,
Scratch-B's epochs, empty layers, Network Slimming's regularizer in the recipe, unstructured."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxprune import data, flops, masks, models
from jaxprune import structured as st
from jaxprune.studies import structured as study
from jaxprune.train import Split, TrainConfig, fit, init_model, make_optimizer


@pytest.fixture(scope="module")
def digits():
    return Split(*data.load("digits", "train")), Split(*data.load("digits", "test"))


def _recipe(**kw):
    return TrainConfig(model="lenet_300_100", dataset="digits", batch_size=64, optimizer="adam",
                       learning_rate=3e-3, schedule="constant", **kw)


def test_pipeline_equals_the_same_steps_by_hand(digits):
    train, test = digits
    s = st.channel_groups("lenet_300_100", widths=(24, 12))
    large = _recipe(epochs=2, model_options={"widths": (24, 12)})
    ft = large.replace(epochs=1, learning_rate=1e-3)
    v0 = init_model(s.model, jax.random.key(0), train.images)
    trained = fit(s.model, v0, train, test, large.replace(epochs=1), progress=False)
    trained = {"params": trained.state.params}
    key = jax.random.key(5)
    policy = study.get_policy("ratio", s, ratio=0.5)
    res = study.run(s, trained, train, test, criterion="l1", policy=policy, config=large,
                    finetune_config=ft, key=key, input_shape=(8, 8, 1))

    # By hand: L1 scores, half of every layer, surgery / a fresh init, three fits.
    scores = st.criteria.get("l1", structure=s)(trained)
    keep = st.prune_by_ratio(s, scores, 0.5)
    for g in s.group_names:
        np.testing.assert_array_equal(res.selection.keep[g], keep[g])
    assert tuple(res.narrow_options["widths"]) == (12, 6)
    dense, pruned = st.count_pruned(s, input_shape=(8, 8, 1)), st.count_pruned(
        s, keep, input_shape=(8, 8, 1))
    assert (res.selection.dense, res.selection.pruned) == (dense, pruned)
    narrow = st.prune_channels(s, trained, keep, input_shape=(8, 8, 1))
    fresh = st.fresh_init(s, keep, key=jax.random.fold_in(key, 1), input_shape=(8, 8, 1))
    b_epochs = int(2 * dense.macs / pruned.macs)
    assert b_epochs == 4  # int(2 * 1944 / 900): 64*24+24*12+12*10 over 64*12+12*6+6*10 MACs
    by_hand = {
        "finetune": fit(narrow.model, narrow.variables, train, test, ft, progress=False),
        "scratch-e": fit(fresh.model, fresh.variables, train, test, large, progress=False),
        "scratch-b": fit(fresh.model, fresh.variables, train, test,
                         large.replace(epochs=b_epochs), progress=False),
    }
    for mode, r in by_hand.items():
        assert res.modes[mode]["test_accuracy"] == float(r.results["test_accuracy"]), mode
        assert res.modes[mode]["epochs"] == len(r.history)
    assert res.modes["scratch-b"]["epochs"] == 4 and res.modes["finetune"]["epochs"] == 1
    # Scratch-E and -B start from the same new init, not the trained weights.
    w = fresh.variables["params"]["fc1"]["kernel"]
    assert not np.allclose(w, narrow.variables["params"]["fc1"]["kernel"])


def test_policy_registry_lists_checks_and_rejects():
    assert study.policy_names() == ["global", "li-resnet56-a", "li-resnet56-b", "li-vgg16-a",
                                    "macs", "params", "ratio"]
    s = st.channel_groups("resnet20")
    with pytest.raises(ValueError, match=r"unknown structured policy 'l2'.*'ratio'"):
        study.get_policy("l2", s, ratio=0.5)
    with pytest.raises(ValueError, match="for vgg16, not 'resnet20'"):
        study.get_policy("li-vgg16-a", s)
    with pytest.raises(ValueError, match="for resnet56, not 'vgg16'"):
        study.get_policy("li-resnet56-b", "vgg16")
    with pytest.raises(TypeError, match="takes"):
        study.get_policy("li-resnet56-a", "resnet56", ratio=0.5)
    with pytest.raises(TypeError, match="required"):
        study.get_policy("ratio", s)
    for bad in (-0.1, 1.0, "0.5"):
        with pytest.raises(ValueError, match=r"in \[0, 1\)"):
            study.get_policy("global", s, ratio=bad)
    with pytest.raises(ValueError, match="on_empty"):
        study.get_policy("ratio", s, ratio=0.5, on_empty="skip")


def test_li_vgg16_a_policy_gives_the_published_widths_and_scales_with_width():
    for mult in (1.0, 0.25):
        s = st.channel_groups("vgg16", width_multiplier=mult)
        scores = {g.name: np.arange(g.width, dtype=np.float32) for g in s.groups}
        keep = study.get_policy("li-vgg16-a", s)(s, scores, None)
        want = [max(1, round(w * mult)) for w in st.LI_VGG16_A_WIDTHS]
        assert [keep[f"conv{i + 1}"].size for i in range(13)] == want
        # the highest scores are kept
        assert keep["conv1"].tolist() == list(range(s.group("conv1").width - want[0],
                                                    s.group("conv1").width))


def test_budget_policies_remove_the_fraction_of_macs_or_params():
    s = st.channel_groups("vgg11", width_multiplier=0.25)
    rng = np.random.default_rng(0)
    scores = {g.name: rng.random(g.width) for g in s.groups}
    dense = st.count_pruned(s)
    for metric in ("macs", "params"):
        keep = study.get_policy(metric, s, ratio=0.5)(s, scores, None)
        assert getattr(st.count_pruned(s, keep), metric) <= 0.5 * getattr(dense, metric)


def test_scratch_b_epochs_for_known_flops_ratios():
    # Li et al.'s VGG-16-A: 313,463,808 -> 206,279,680 MACs (tests/test_structured_policies.py)
    assert study.scratch_b_epochs(160, 313_463_808, 206_279_680) == 243  # 160 * 1.5196
    assert study.scratch_b_epochs(160, 3.0, 1.0) == 480  # the CIFAR code: uncapped
    assert study.scratch_b_epochs(160, 3.0, 1.0, cap=2) == 320  # the paper's ImageNet rule
    assert study.scratch_b_epochs(10, 1.0, 1.0) == 10
    assert study.scratch_b_epochs(7, 10.0, 4.0) == 17  # int(17.5)
    with pytest.raises(ValueError, match="FLOPs must be > 0"):
        study.scratch_b_epochs(10, 1.0, 0.0)
    with pytest.raises(ValueError, match="cap"):
        study.scratch_b_epochs(10, 2.0, 1.0, cap=0.5)
    with pytest.raises(ValueError, match="modes"):
        study.check_modes(["scratch"])


def test_a_policy_that_empties_a_layer_raises_naming_it():
    s = st.channel_groups("lenet_300_100", widths=(6, 5))
    scores = {"fc1": np.ones(6), "fc2": np.zeros(5)}  # fc2 entirely below fc1
    with pytest.raises(ValueError, match="'fc2' would keep 0"):
        study.get_policy("global", s, ratio=0.5)(s, scores, None)
    keep = study.get_policy("global", s, ratio=0.5, on_empty="clamp")(s, scores, None)
    assert keep["fc2"].size == 1 and keep["fc1"].size + keep["fc2"].size == 11 - 5
    with pytest.raises(ValueError, match="'fc1' would keep 0"):
        study.get_policy("ratio", s, ratio=0.9)(s, scores, None)  # floor(6 * 0.1) = 0


def test_bn_l1_in_the_recipe_is_network_slimmings_update():
    params = {"conv1": {"kernel": jnp.array([[0.5, -0.2]])},
              "conv1_bn": {"scale": jnp.array([0.3, -0.7]), "bias": jnp.array([0.1, 0.2])}}
    grads = jax.tree.map(lambda p: 0.1 * jnp.ones_like(p), params)
    cfg = TrainConfig(learning_rate=0.1, momentum=0.9, weight_decay=1e-3, schedule="constant",
                      bn_l1=0.01)
    got, _ = make_optimizer(cfg, 10).update(grads, make_optimizer(cfg, 10).init(params), params)
    ref_tx = optax.chain(st.network_slimming(0.01), optax.add_decayed_weights(1e-3),
                         optax.sgd(0.1, momentum=0.9))
    want, _ = ref_tx.update(grads, ref_tx.init(params), params)
    jax.tree.map(np.testing.assert_array_equal, got, want)
    # by hand on the BN scale: -(lr) * (g + s * sign(gamma) + wd * gamma)
    np.testing.assert_allclose(got["conv1_bn"]["scale"],
                               -0.1 * (0.1 + 0.01 * np.sign([0.3, -0.7]) + 1e-3 * np.array(
                                   [0.3, -0.7])), rtol=1e-6)
    np.testing.assert_allclose(got["conv1"]["kernel"], -0.1 * (0.1 + 1e-3 * np.array(
        [[0.5, -0.2]])), rtol=1e-6)
    assert "bn_l1" not in TrainConfig().to_dict() and cfg.to_dict()["bn_l1"] == 0.01
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="bn_l1"):
        TrainConfig(bn_l1=-1.0).validate()


def test_unstructured_prunes_conv_weights_and_scales_scratch_b_by_the_kept_macs():
    rng = np.random.default_rng(0)
    train = Split(rng.random((64, 16, 16, 3), np.float32), rng.integers(0, 10, 64, np.int32))
    model = models.get("conv2", num_classes=10, width_multiplier=0.125)
    v = init_model(model, jax.random.key(0), train.images)
    mask = study.magnitude_mask(v["params"], 0.75)
    kept = removed = 0
    for path, m in jax.tree_util.tree_leaves_with_path(mask):
        p = masks.path_tuple(path)
        if p[-1] == "kernel" and m.ndim == 4:
            kept, removed = kept + int(m.sum()), removed + int((~m).sum())
        else:
            assert bool(np.all(m)), p  # dense layers and biases untouched
    assert removed == round(0.75 * (kept + removed))
    # the smallest conv magnitudes went: every removed |w| <= every kept |w|
    w = np.concatenate([np.abs(np.asarray(v["params"][n]["kernel"])).ravel()
                        for n in ("conv1", "conv2")])
    mk = np.concatenate([np.asarray(mask[n]["kernel"]).ravel() for n in ("conv1", "conv2")])
    assert w[~mk].max() <= w[mk].min()

    cfg = TrainConfig(model="conv2", dataset="x", batch_size=32, optimizer="adam",
                      learning_rate=1e-3, schedule="constant", epochs=2, normalize=False)
    res = study.run_unstructured(model, v, train, train, sparsity=0.75, config=cfg,
                                 finetune_config=cfg.replace(epochs=1),
                                 key=jax.random.key(1), input_shape=(16, 16, 3), cap=2.0)
    dense = flops.count_macs(model, v, (16, 16, 3))
    pruned = flops.count_macs(model, v, (16, 16, 3), mask=mask)
    assert (res.dense_macs, res.pruned_macs) == (dense, pruned)
    assert res.modes["scratch-b"]["epochs"] == min(int(2 * dense / pruned), 4)
    assert res.modes["finetune"]["epochs"] == 1 and res.modes["scratch-e"]["epochs"] == 2
    jax.tree.map(np.testing.assert_array_equal, res.mask, mask)
