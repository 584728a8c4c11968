"""``jaxprune models``, ``datasets`` and ``flops``: what the zoo, the datasets and a model hold."""

from __future__ import annotations

import argparse
import json

from jaxprune.cli import flags


def register(sub) -> None:
    p = sub.add_parser("models", help="list the model zoo with parameter and MAC counts")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--input-shape", help="per-example shape, e.g. 32,32,3 (default: the "
                   "model's usual dataset)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("datasets", help="list the datasets and where they come from")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("flops", help="per-layer MACs and parameters of a model (optionally "
                       "under saved masks)")
    p.add_argument("--model", required=True, help=flags.MODEL_HELP)
    p.add_argument("--dataset", help="use this dataset's input shape")
    p.add_argument("--input-shape", help="per-example shape, e.g. 32,32,3")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--options", help='model options as JSON, e.g. \'{"width_multiplier": 0.5}\'')
    p.add_argument("--masks", help="masks.npz written by `jaxprune prune`")
    p.add_argument("--seed-index", type=int, default=0, help="which seed's mask in --masks")
    p.set_defaults(func=cmd_flops)


def cmd_models(args: argparse.Namespace) -> int:
    import jax
    import jax.numpy as jnp

    from jaxprune import flops, models
    from jaxprune.report import format_table

    forced = flags.parse_shape(args.input_shape) if args.input_shape else None
    rows, unfit = [], []
    for name in models.names():
        shape = forced or models.default_input_shape(name)
        model = models.get(name, num_classes=args.num_classes)
        try:
            variables = jax.eval_shape(lambda m=model, s=shape: m.init(
                jax.random.key(0), jnp.zeros((1, *s)), train=False))
        except Exception:  # noqa: BLE001 - this model cannot take the forced shape
            unfit.append(name)
            continue
        rows.append({
            "model": name,
            "input": "x".join(map(str, shape)),
            "params": flops.count_params(variables["params"]),
            "MACs": flops.count_macs(model, variables, shape),
            "description": models.describe(name),
        })
    if not rows:
        raise ValueError(f"no model of the zoo takes inputs of shape {forced} (--input-shape is "
                         "one example's shape without the batch, e.g. 28,28,1 or 32,32,3)")
    print(format_table(rows))
    print("\nMACs: multiply-accumulates of conv/dense layers for one example, counted once.")
    if unfit:
        print(f"not listed (cannot take inputs of shape {forced}): {', '.join(unfit)}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from jaxprune import data
    from jaxprune.report import format_table

    rows = []
    for name in data.names():
        i = data.info(name)
        rows.append({"dataset": name, "input": "x".join(map(str, i.input_shape)),
                     "classes": i.num_classes, "train": i.train_size, "test": i.test_size,
                     "source": i.source})
    print(format_table(rows))
    return 0


def cmd_flops(args: argparse.Namespace) -> int:
    import jax
    import jax.numpy as jnp

    from jaxprune import contract, data, flops, models
    from jaxprune.report import format_table

    if args.input_shape:
        shape = flags.parse_shape(args.input_shape)
    elif args.dataset:
        shape = data.info(args.dataset).input_shape
    elif contract.is_spec(args.model):
        raise ValueError(f"{args.model} is not a zoo model: give its input with --dataset or "
                         "--input-shape (e.g. 28,28,1)")
    else:
        shape = models.default_input_shape(args.model)
    try:
        options = json.loads(args.options) if args.options else {}
    except json.JSONDecodeError as e:
        raise ValueError(f"--options must be a JSON object, e.g. '{{\"width_multiplier\": 0.5}}'"
                         f"; got {args.options!r} ({e})") from None
    model = contract.as_model(models.get(args.model, num_classes=args.num_classes, **options))
    example = jnp.zeros((1, *shape))
    try:
        variables = jax.eval_shape(lambda: model.init(jax.random.key(0), example))
        jax.eval_shape(lambda v: model.apply(v, example), variables)
    except Exception as e:  # noqa: BLE001 - one line instead of a trace
        raise ValueError(f"{args.model} cannot take inputs of shape {tuple(shape)}: "
                         f"{type(e).__name__}: {str(e).splitlines()[0]}") from None
    layers = flops.trace_layers(model, variables, example)
    rows = [{"layer": "/".join(layer.path[:-1]), "kind": layer.kind,
             "kernel": "x".join(map(str, layer.kernel_shape)),
             "output": "x".join(map(str, layer.output_shape)), "MACs": layer.macs}
            for layer in layers]
    mask = None
    if args.masks:
        mask = _load_mask(args.masks, variables["params"], args.seed_index, args.model)
        for row, layer in zip(rows, layers, strict=True):
            kept = float(jnp.mean(_get_path(mask, layer.path)))
            row["density"] = kept
            row["MACs left"] = round(layer.macs * kept)
    print(format_table(rows))
    total = flops.count_macs(model, variables, shape)
    print(f"\n{args.model}, input {shape}: {flops.count_params(variables['params']):,} params, "
          f"{total:,} MACs per example (multiply-accumulates counted once; FLOPs ~ 2x MACs)")
    if mask is not None:
        left = flops.count_macs(model, variables, shape, mask=mask)
        print(f"under the mask (seed index {args.seed_index}): {left:,} MACs "
              f"({100 * left / total:.2f}%), "
              f"{flops.count_params(variables['params'], mask=mask):,} params kept")
    return 0


def _load_mask(path: str, params, seed_index: int, model: str):
    """One seed's mask from a ``prune`` masks file, checked against ``params`` leaf by leaf."""
    import jax
    import numpy as np

    from jaxprune import masks

    try:
        saved = np.load(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"--masks {path} is not a masks.npz written by `jaxprune prune` "
                         f"({type(e).__name__}: {e})") from None
    with saved:
        leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
        names = [masks.path_str(kp) for kp, _ in leaves]
        if set(names) != set(saved.files):
            missing = sorted(set(names) - set(saved.files))[:3]
            raise ValueError(
                f"--masks {path} was not written for {model} with these options: it lacks "
                f"{missing or 'nothing'} and holds {sorted(set(saved.files) - set(names))[:3]}; "
                "pass the --model (and --options) it was pruned with")
        out = []
        for name, (_, leaf) in zip(names, leaves, strict=True):
            arr = saved[name]
            if arr.ndim != len(leaf.shape) + 1 or arr.shape[1:] != leaf.shape:
                raise ValueError(f"--masks {path}: {name} has shape {arr.shape[1:]} per seed but "
                                 f"{model} has {leaf.shape}; pass the --model, --options and "
                                 "--dataset it was pruned with")
            if not -arr.shape[0] <= seed_index < arr.shape[0]:
                raise ValueError(f"--seed-index {seed_index} is out of range: {path} holds "
                                 f"{arr.shape[0]} seeds (indices 0..{arr.shape[0] - 1})")
            out.append(arr[seed_index].astype(bool))
    return jax.tree_util.tree_unflatten(treedef, out)


def _get_path(tree, path):
    for k in path:
        tree = tree[k]
    return tree
