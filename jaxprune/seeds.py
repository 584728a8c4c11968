"""Run a pure function over N PRNG keys (or N stacked inputs): by vmap, map, chunks or a loop.

Every strategy returns what this Python loop returns (the ``"loop"`` strategy *is* this loop),
up to the rounding of reordered sums (see Numerics)::

  stack([jax.jit(fn)(keys[i], *args) for i in range(len(keys))])   # every leaf gets a leading (N,)

  keys = jax.random.split(jax.random.key(0), 32)                    # (32,)
  masks = seeds.map_seeds(prune_one, keys, batch)                    # prune_one(key, batch) -> mask
  params = seeds.init_seeds(model.init, keys, x)                     # stacked variables, (32, ...)

Strategies (``strategy=``):

  ``"vmap"``     ``jit(vmap(fn))``: one batched program; fastest on GPU/TPU, memory grows with N.
  ``"map"``      ``jit(lax.map(fn))``: one compiled program running the seeds one after another.
  ``"chunked"``  ``jit(lax.map(fn, batch_size=chunk_size))``: vmap over chunks of ``chunk_size``
                 seeds, the chunks in sequence (a remainder chunk handles N % chunk_size).
  ``"loop"``     a Python loop over ``jit(fn)``, results stacked: the reference. Never sharded.
  ``"auto"``     :func:`choose_strategy`.

The ``"auto"`` rule (:func:`choose_strategy`), from measurements on a 2-core CPU:

  1. On GPU/TPU: ``"vmap"``, or ``"chunked"`` when ``chunk_size`` is given (to bound memory).
  2. On CPU, trace ``fn`` and ``vmap(fn)`` and compare their contractions
     (:func:`count_contractions`, nested jaxprs included: jit, custom_vjp, scan, cond). vmap
     contracts two seed-batched operands wherever per-seed weights meet per-seed activations
     (every layer after the first of a network initialized from the key, every weight gradient):
     a) a convolution becomes a *grouped* convolution -> ``"loop"`` (``"map"`` when sharded over
        several devices). XLA:CPU runs grouped convolutions several times slower than a loop,
        and a conv weight gradient inside ``lax.map``'s while loop is not rewritten to its fast
        layout (3x3 conv, 32x32x16, batch 32, 4 seeds: loop 31 ms, vmap 27 ms, lax.map 1440 ms;
        ResNet-20 SNIP, 4 seeds, batch 32: loop 0.7-0.8 s, vmap 2.5-3.9 s, lax.map 18-23 s).
     b) else a matmul becomes a *batched* matmul -> ``"map"`` (LeNet-300-100 SNIP, 32 seeds,
        batch 100: loop 0.17-0.21 s, map 0.19 s, chunks of 8 0.21-0.24 s, vmap 0.34-0.37 s;
        SNIP + 90% mask, 32 seeds: map 60 ms, loop 80 ms),
     c) unless one seed's own work runs matmuls in a loop (:func:`contracts_in_loop`: SynFlow's
        rounds, iterative SNIP) -> ``"loop"`` (``"map"`` when sharded). On two threads XLA:CPU
        runs that loop inside ``lax.map``'s loop 3-4x slower than alone (LeNet-300-100 SynFlow,
        100 rounds, 4 seeds: map 2.6-3.1 s, loop 0.69-1.49 s; 8 seeds: 5.4-6.0 s vs 1.4-1.7 s),
        but not on one core (4 seeds: 0.82-0.93 vs 0.83-1.05 s) nor with its concurrency-optimized
        scheduler off process-wide (8 seeds: 1.42-1.46 vs 1.45-1.47 s), that is with
        ``XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=false``. The option given to
        one ``jax.jit`` through ``compiler_options`` changes nothing (5.59 vs 1.42 s), so the
        rule cannot apply it per program. A seed's rounds dwarf a dispatch: the loop costs
        nothing there.
  3. Otherwise on CPU, when one seed's work has no conv or matmul at all and loops
     (:func:`has_elementwise_loop`: a ``while``/``scan`` of elementwise work, e.g. the exact
     top-k's 32-step bit search over every score after random or magnitude scores) -> ``"map"``.
     vmap makes each step of the loop sweep all N seeds' arrays, out of cache, where ``lax.map``
     sweeps one seed's at a time (90% global masks from random / magnitude scores, medians,
     ``python -m benchmarks.strategies``: LeNet-300-100, 32 seeds: map 37-49 ms, loop 47-59 ms,
     vmap 149-204 ms; ResNet-20, 32 seeds: map 61 ms, loop 75 ms, vmap 280 ms).
  4. Otherwise on CPU (straight-line elementwise work such as random inits, or only the inputs
     batched against shared weights, which vmap folds into a bigger batch): ``"vmap"``, or
     ``"chunked"`` when ``chunk_size`` is given.

Sharding: with more than one device (``jax.devices()`` or ``devices=``), the seed axis is split
over a one-axis mesh ``("seeds",)`` with ``shard_map``: each device runs its share with the chosen
strategy. N is padded (by repeating the last seed) up to a multiple of the device count and the
padding is dropped after; when N divides evenly the outputs stay sharded ``P("seeds")``.

Numerics: batched matmuls/convs are different GEMMs to XLA, so ``"vmap"``/``"chunked"`` (and
``"map"`` for convs) may differ from the loop in the last bits: for SNIP scores of small nets,
up to 5e-8 of the leaf's largest score (``tests/test_seeds.py``). Elementwise functions (random
inits included) match bitwise under every strategy.

Compilation: programs are cached on (``fn``, strategy, chunk size, argument structure, devices)
and ``jax.jit`` caches on shapes, so repeated calls with the same ``fn`` object and shapes do not
retrace. Pass the same function object each time (a fresh ``lambda`` per call retraces, as with
``jax.jit``). The ``"auto"`` decision traces ``fn`` twice more, once per new set of shapes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Jaxpr, jaxprs_in_params
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

PyTree = Any

STRATEGIES = ("auto", "vmap", "map", "chunked", "loop")
DEFAULT_CHUNK_SIZE = 8
SEED_AXIS = "seeds"


# ---------------------------------------------------------------------------------------------
# Pytree helpers.
# ---------------------------------------------------------------------------------------------


def stack(trees: Sequence[PyTree]) -> PyTree:
    """Stack same-structure pytrees leaf by leaf: ``[t_0, .., t_{N-1}]`` -> one tree of (N, ...).

    Args:
      trees: a non-empty sequence of pytrees with identical structure and leaf shapes.

    Returns:
      A pytree like ``trees[0]`` whose leaves have a new leading axis of size N.
    """
    trees = list(trees)
    if not trees:
        raise ValueError("stack needs at least one tree, got an empty sequence")
    first = jax.tree.structure(trees[0])
    for i, t in enumerate(trees[1:], start=1):
        if jax.tree.structure(t) != first:
            raise ValueError(
                f"stack needs trees of one structure: trees[0] is {first}, "
                f"trees[{i}] is {jax.tree.structure(t)}"
            )
    return _stack_jit(trees)


@jax.jit
def _stack_jit(trees: list[PyTree]) -> PyTree:
    """All leaves stacked in one compiled dispatch (not one ``jnp.stack`` call per leaf)."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def unstack(tree: PyTree, i: int | None = None) -> PyTree | list[PyTree]:
    """The ``i``-th slice of a stacked pytree, or (``i=None``) the list of all N slices.

    Args:
      tree: a pytree whose leaves share a leading axis of size N.
      i: which slice, ``-N <= i < N``; ``None`` for all of them.

    Returns:
      ``jax.tree.map(lambda x: x[i], tree)``, or ``[that for i in range(N)]``.
    """
    n = _leading_size(jax.tree.leaves(tree), "unstack")
    if i is None:
        return [jax.tree.map(lambda x, j=j: x[j], tree) for j in range(n)]
    if not -n <= i < n:
        raise IndexError(f"unstack index {i} out of range for {n} stacked trees")
    return jax.tree.map(lambda x: x[i], tree)


def _leading_size(leaves: Sequence[Any], what: str) -> int:
    """The common leading-axis size of ``leaves``; ``ValueError`` if missing or inconsistent."""
    if not leaves:
        raise ValueError(f"{what}: no array leaves to map over (is every in_axes entry None?)")
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
    if None in sizes:
        raise ValueError(f"{what}: a mapped leaf is a scalar; mapped leaves need a leading axis")
    if len(sizes) != 1:
        shapes = sorted({jnp.shape(x) for x in leaves})[:6]
        raise ValueError(f"{what}: mapped leaves disagree on the leading axis size: {shapes}")
    return sizes.pop()


def seed_keys(seeds: Sequence[int], *folds: int) -> jax.Array:
    """(N,) keys ``fold_in(...fold_in(key(s), folds[0])..., folds[-1])`` for every seed ``s``,
    in one compiled call (a per-seed Python loop of ``fold_in`` costs a dispatch per fold).

    Example:
      >>> seed_keys([0, 1], 1)   # the keys fit draws seed 0's and 1's batch order from
    """
    seeds = [int(s) for s in seeds]
    folds = tuple(int(f) for f in folds)
    if _int32(seeds):
        return _seed_keys(folds)(jnp.asarray(seeds, jnp.int32))
    return jnp.stack([_fold(jax.random.key(s), folds) for s in seeds])  # beyond int32: eager


def seeds_or_keys(seeds: Sequence[int], *folds: int) -> Any:
    """What a program that derives its own keys takes for ``seeds``: an (N,) int32 NumPy array
    when every seed fits in int32 (nothing is compiled; :func:`key_from` inside the program
    gives the key :func:`seed_keys` would), else ``seed_keys(seeds, *folds)``."""
    seeds = [int(s) for s in seeds]
    if _int32(seeds):
        return np.asarray(seeds, np.int32)
    return seed_keys(seeds, *folds)


def _int32(seeds: list[int]) -> bool:
    """Whether every seed fits in int32 (then its key is derived inside a compiled program)."""
    return all(-(2**31) <= s < 2**31 for s in seeds)


def key_from(seed_or_key: jax.Array, *folds: int) -> jax.Array:
    """Traceable: ``seed_keys([s], *folds)[0]`` for an int32 seed ``s``, or the key as given
    (one element of :func:`seeds_or_keys`)."""
    if jax.dtypes.issubdtype(seed_or_key.dtype, jax.dtypes.prng_key):
        return seed_or_key
    return _fold(jax.random.key(seed_or_key), tuple(int(f) for f in folds))


def _fold(key: jax.Array, folds: tuple[int, ...]) -> jax.Array:
    for f in folds:
        key = jax.random.fold_in(key, f)
    return key


@functools.lru_cache(maxsize=32)
def _seed_keys(folds: tuple[int, ...]) -> Callable[[jax.Array], jax.Array]:
    return jax.jit(jax.vmap(lambda s: _fold(jax.random.key(s), folds)))


# ---------------------------------------------------------------------------------------------
# Argument checks and flattening.
# ---------------------------------------------------------------------------------------------


@functools.cache
def _raw_key_shape() -> tuple[int, ...]:
    return tuple(jax.random.key_data(jax.random.key(0)).shape)


def check_keys(keys: Any) -> int:
    """Return N for a batch of PRNG keys; ``ValueError`` unless keys is (N,) typed or (N, 2) raw.

    Args:
      keys: ``jax.random.split(jax.random.key(s), N)`` (shape (N,)), or legacy raw keys
        ``jax.random.split(jax.random.PRNGKey(s), N)`` (uint32, shape (N, 2)).

    Returns:
      N >= 1.
    """
    if not hasattr(keys, "dtype") or not hasattr(keys, "shape"):
        raise ValueError(
            f"keys must be an array of N PRNG keys, e.g. jax.random.split(jax.random.key(0), N); "
            f"got {type(keys).__name__}"
        )
    raw = _raw_key_shape()
    if jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
        if keys.ndim != 1:
            raise ValueError(
                f"keys must be a 1-D array of N keys (jax.random.split(key, N)), got a key array "
                f"of shape {keys.shape}" + (" (one key: split it)" if keys.ndim == 0 else "")
            )
    elif keys.dtype == jnp.uint32:
        if keys.ndim != 1 + len(raw) or tuple(keys.shape[1:]) != raw:
            raise ValueError(
                f"raw uint32 keys must have shape (N, {', '.join(map(str, raw))}), got "
                f"{keys.shape}" + (" (one key: split it)" if tuple(keys.shape) == raw else "")
            )
    else:
        raise ValueError(
            f"keys must be PRNG keys (a key array or raw uint32 keys), got dtype {keys.dtype}; "
            "build them with jax.random.split(jax.random.key(seed), N)"
        )
    if keys.shape[0] == 0:
        raise ValueError("keys is empty: map_seeds needs at least one key")
    return int(keys.shape[0])


def _check_axes(in_axes: Any, num_args: int) -> tuple[int | None, ...]:
    """``in_axes`` as one 0/None per argument (a bare 0/None applies to all)."""
    axes = tuple(in_axes) if isinstance(in_axes, (tuple, list)) else (in_axes,) * num_args
    if len(axes) != num_args:
        raise ValueError(f"in_axes has {len(axes)} entries for {num_args} arguments")
    for i, a in enumerate(axes):
        if a is not None and (isinstance(a, bool) or a != 0):
            raise ValueError(
                f"in_axes[{i}] is {a!r}; use 0 (mapped over the leading axis) or None (shared). "
                "Move another axis first with jnp.moveaxis, or split a partly mapped argument."
            )
    return axes


def _flatten(args: tuple, in_axes: Any) -> tuple[Any, tuple[bool, ...], list, list, int]:
    """Split ``args`` into (treedef, per-leaf mapped flags, mapped leaves, shared leaves, N)."""
    if not args:
        raise ValueError("nothing to map over: pass at least one argument")
    axes = _check_axes(in_axes, len(args))
    flags = tuple(a == 0 for arg, a in zip(args, axes, strict=True) for _ in jax.tree.leaves(arg))
    leaves, treedef = jax.tree.flatten(args)
    mapped = [x for x, f in zip(leaves, flags, strict=True) if f]
    shared = [x for x, f in zip(leaves, flags, strict=True) if not f]
    return treedef, flags, mapped, shared, _leading_size(mapped, "map_stacked")


def _merge(mapped: Sequence[Any], shared: Sequence[Any], flags: Sequence[bool]) -> list:
    m, s = iter(mapped), iter(shared)
    return [next(m) if f else next(s) for f in flags]


def _check_strategy(strategy: str, chunk_size: int | None) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; valid strategies: {list(STRATEGIES)}")
    if chunk_size is None:
        return
    if strategy not in ("chunked", "auto"):
        raise ValueError(f"chunk_size applies to 'chunked' and 'auto', not {strategy!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")


def _mesh_devices(devices: Sequence[Any] | None, strategy: str) -> tuple | None:
    """The devices to shard the seed axis over, or None for a single-device run."""
    if devices is None:
        found = tuple(jax.devices())
        return found if len(found) > 1 and strategy != "loop" else None
    devs = tuple(devices)
    if not devs:
        raise ValueError("devices is empty; pass None (all devices) or a list of devices")
    if strategy == "loop":
        raise ValueError("the 'loop' strategy is the single-device reference; drop devices=")
    return devs


# ---------------------------------------------------------------------------------------------
# The auto rule.
# ---------------------------------------------------------------------------------------------


_CONTRACTIONS = ("conv_general_dilated", "dot_general")
_LOOPS = ("while", "scan")


def _equations(jaxpr: Jaxpr, in_loop: bool = False) -> Iterator[tuple[Any, bool]]:
    """Every equation of ``jaxpr`` and of the jaxprs in its equations' params, recursively, each
    with whether it runs inside a ``while`` or ``scan`` body."""
    for eqn in jaxpr.eqns:
        yield eqn, in_loop
        looped = in_loop or eqn.primitive.name in _LOOPS
        for sub in jaxprs_in_params(eqn.params):
            yield from _equations(sub, looped)


class Contractions(NamedTuple):
    """How batched the contractions of a jaxpr are (nested jaxprs included)."""

    conv_groups: int  # sum over conv_general_dilated of feature_group_count * batch_group_count
    dot_batch_dims: int  # sum over dot_general of the number of batch dimensions


def count_contractions(jaxpr: Jaxpr) -> Contractions:
    """Sum the convolution group counts and matmul batch dimensions of ``jaxpr``, recursively.

    Args:
      jaxpr: e.g. ``jax.make_jaxpr(f)(*args).jaxpr``; jaxprs in equation params (``jit``,
        ``custom_vjp``/``custom_jvp``, ``scan``, ``while``, ``cond`` branches) are included.

    Returns:
      :class:`Contractions`; an ordinary conv adds 1 to ``conv_groups``, a plain matmul 0 to
      ``dot_batch_dims``.
    """
    groups, batch_dims = 0, 0
    for eqn, _ in _equations(jaxpr):
        if eqn.primitive.name == "conv_general_dilated":
            groups += eqn.params["feature_group_count"] * eqn.params["batch_group_count"]
        elif eqn.primitive.name == "dot_general":
            batch_dims += len(eqn.params["dimension_numbers"][1][0])  # lhs batch dims
    return Contractions(groups, batch_dims)


def contracts_in_loop(jaxpr: Jaxpr, inside: bool = False) -> bool:
    """Whether a convolution or matmul of ``jaxpr`` runs inside a ``while`` or ``scan`` loop.

    Args:
      jaxpr: e.g. ``jax.make_jaxpr(f)(*args).jaxpr``; nested jaxprs are searched as in
        :func:`count_contractions` (a ``fori_loop`` is a ``scan`` or a ``while``).
      inside: treat ``jaxpr`` itself as a loop body.

    Returns:
      True for a loop over rounds of forward/backward passes (SynFlow, iterative SNIP); False
      for loops of elementwise work only (the top-k's bit search) and for straight-line code.
    """
    return any(looped and eqn.primitive.name in _CONTRACTIONS
               for eqn, looped in _equations(jaxpr, inside))


def _contracts(jaxpr: Jaxpr) -> bool:
    """Whether ``jaxpr`` (nested jaxprs included) has a convolution or matmul."""
    return any(eqn.primitive.name in _CONTRACTIONS for eqn, _ in _equations(jaxpr))


def has_elementwise_loop(jaxpr: Jaxpr) -> bool:
    """Whether ``jaxpr`` (nested jaxprs included) has a ``while`` or ``scan`` loop with no
    convolution or matmul inside (e.g. the exact top-k's bit search over all scores)."""
    return any(eqn.primitive.name in _LOOPS
               and not any(_contracts(sub) for sub in jaxprs_in_params(eqn.params))
               for eqn, _ in _equations(jaxpr))


class _Profile(NamedTuple):
    grouped_convs: bool  # vmap would turn a conv into a grouped conv
    batched_matmuls: bool  # vmap would turn a matmul into a batched matmul
    looped: bool  # a conv or matmul runs in a loop of one seed's work
    elementwise_loop: bool  # one seed's work has no conv/matmul and loops (a top-k's search)


@functools.lru_cache(maxsize=128)
def _profile(fn: Callable, treedef: Any, flags: tuple, avals: tuple) -> _Profile:
    """What ``vmap`` over the mapped leaves would create, and whether one seed's work loops.

    vmap turns a conv whose input and kernel are both batched into a grouped conv, and such a
    matmul into a batched matmul (one batched operand only widens the other's free dimension).
    """

    def one(*leaves: Any) -> Any:
        return fn(*jax.tree.unflatten(treedef, leaves))

    single = [jax.ShapeDtypeStruct(s, d) for s, d in avals]
    batched = [
        jax.ShapeDtypeStruct((2, *s) if f else s, d) for (s, d), f in zip(avals, flags, strict=True)
    ]
    axes = [0 if f else None for f in flags]
    plain_jaxpr = jax.make_jaxpr(one)(*single).jaxpr
    plain = count_contractions(plain_jaxpr)
    vmapped = count_contractions(jax.make_jaxpr(jax.vmap(one, in_axes=axes))(*batched).jaxpr)
    return _Profile(
        grouped_convs=vmapped.conv_groups > plain.conv_groups,
        batched_matmuls=vmapped.dot_batch_dims > plain.dot_batch_dims,
        looped=contracts_in_loop(plain_jaxpr),
        elementwise_loop=has_elementwise_loop(plain_jaxpr) and not _contracts(plain_jaxpr),
    )


def _dtype(x: Any) -> Any:
    return x.dtype if hasattr(x, "dtype") else jnp.result_type(x)


def _auto(
    fn: Callable,
    treedef: Any,
    flags: tuple,
    mapped: list,
    shared: list,
    chunk_size: int | None,
    devices: tuple | None,
    backend: str | None = None,
) -> str:
    """The ``"auto"`` rule (module docstring); ``devices`` as from :func:`_mesh_devices`."""
    vmapped = "vmap" if chunk_size is None else "chunked"
    if backend is None:
        backend = devices[0].platform if devices else jax.default_backend()
    if backend != "cpu":
        return vmapped
    one_seed = [(tuple(jnp.shape(x))[1:], _dtype(x)) for x in mapped]
    avals = tuple(_merge(one_seed, [(tuple(jnp.shape(x)), _dtype(x)) for x in shared], flags))
    profile = _profile(fn, treedef, flags, avals)
    if profile.grouped_convs or (profile.batched_matmuls and profile.looped):
        return "map" if devices else "loop"
    return "map" if profile.batched_matmuls or profile.elementwise_loop else vmapped


def choose_strategy(
    fn: Callable[..., PyTree],
    example_args: tuple,
    *,
    in_axes: Any = 0,
    chunk_size: int | None = None,
    devices: Sequence[Any] | None = None,
    backend: str | None = None,
) -> str:
    """The strategy ``"auto"`` picks for ``fn`` over ``example_args`` (see the module docstring).

    Args:
      fn: the per-seed function, ``fn(*one_slice_of_args)``.
      example_args: the stacked arguments as given to :func:`map_stacked`, e.g. ``(keys, batch)``
        (only shapes and dtypes matter).
      in_axes: 0 (mapped) or None (shared) per argument, as in :func:`map_stacked`; for
        :func:`map_seeds` arguments use ``(0, None, ...)``.
      chunk_size: as passed to :func:`map_stacked`; given, it turns a ``"vmap"`` pick into
        ``"chunked"``.
      devices: as passed to :func:`map_stacked`; their platform is the backend the rule uses
        (e.g. ``jax.devices("gpu")``), and several devices rule out ``"loop"``.
      backend: ``"cpu"``, ``"gpu"``, ``"tpu"`` to override that platform (what-if queries).

    Returns:
      ``"vmap"``, ``"chunked"``, ``"map"`` or ``"loop"``.

    Example:
      >>> keys = jax.random.split(jax.random.key(0), 4)
      >>> fn = lambda k, w: jax.random.normal(k, (3,)) @ w  # only one operand per seed
      >>> choose_strategy(fn, (keys, jnp.ones((3, 2))), in_axes=(0, None))
      'vmap'
    """
    _check_strategy("auto", chunk_size)
    treedef, flags, mapped, shared, _ = _flatten(tuple(example_args), in_axes)
    devs = _mesh_devices(devices, "auto")
    return _auto(fn, treedef, flags, mapped, shared, chunk_size, devs, backend)


# ---------------------------------------------------------------------------------------------
# Execution.
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _program(
    fn: Callable, strategy: str, chunk_size: int, treedef: Any, flags: tuple, devices: tuple | None
) -> Callable[[list, list], PyTree]:
    """``jit(run)`` with ``run(mapped_leaves, shared_leaves) -> stacked outputs``."""

    def local(mapped: list, shared: list) -> PyTree:
        def one(m: list) -> PyTree:
            return fn(*jax.tree.unflatten(treedef, _merge(m, shared, flags)))

        if strategy == "vmap":
            return jax.vmap(one)(mapped)
        if strategy == "map":
            return jax.lax.map(one, mapped)
        return jax.lax.map(one, mapped, batch_size=chunk_size)

    if devices is None:
        return jax.jit(local)
    d = len(devices)
    mesh = Mesh(np.array(devices), (SEED_AXIS,))
    sharded = jax.shard_map(local, mesh=mesh, in_specs=(P(SEED_AXIS), P()), out_specs=P(SEED_AXIS))

    def run(mapped: list, shared: list) -> PyTree:
        n = mapped[0].shape[0]
        pad = -n % d
        if pad:  # repeat the last seed: (n + pad, ...), a multiple of d
            idx = np.minimum(np.arange(n + pad), n - 1)
            mapped = [x[idx] for x in mapped]
        out = sharded(mapped, shared)
        return jax.tree.map(lambda y: y[:n], out) if pad else out

    return jax.jit(run)


@functools.lru_cache(maxsize=64)
def _single(fn: Callable, treedef: Any, flags: tuple) -> Callable[[list, list, jax.Array], PyTree]:
    """``jit`` of seed ``i``'s computation for the ``"loop"`` strategy: slicing seed ``i`` out of
    the stacked leaves happens inside the program, so each seed is one dispatch and ``i`` is
    traced (one compilation for every seed)."""

    def one(mapped: list, shared: list, i: jax.Array) -> PyTree:
        m = [jax.lax.dynamic_index_in_dim(x, i, keepdims=False) for x in mapped]
        return fn(*jax.tree.unflatten(treedef, _merge(m, shared, flags)))

    return jax.jit(one)


def map_stacked(
    fn: Callable[..., PyTree],
    *args: Any,
    in_axes: Any = 0,
    strategy: str = "auto",
    chunk_size: int | None = None,
    devices: Sequence[Any] | None = None,
) -> PyTree:
    """``stack([fn(*args_i) for i in range(N)])`` where ``args_i`` slices the mapped arguments.

    Like ``jax.vmap(fn, in_axes)(*args)``, computed with the chosen strategy and sharded over
    devices when there are several.

    Args:
      fn: pure, jittable ``fn(*args) -> pytree`` for one slice of the mapped arguments.
      *args: pytrees of arrays; mapped ones have a leading (N, ...) axis.
      in_axes: 0 (every argument mapped), None (shared), or one 0/None per argument.
      strategy: one of ``STRATEGIES`` (module docstring).
      chunk_size: seeds per vmapped chunk for ``"chunked"`` (default ``DEFAULT_CHUNK_SIZE``)
        and for ``"auto"`` when it picks ``"chunked"``.
      devices: devices to shard the N axis over; default all of ``jax.devices()`` when there
        are several, else no sharding.

    Returns:
      ``fn``'s output pytree with a leading (N,) axis on every leaf.

    Raises:
      ValueError: unknown strategy, bad ``in_axes``/``chunk_size``, no mapped argument, or
        mapped leaves with different leading sizes.
    """
    _check_strategy(strategy, chunk_size)
    treedef, flags, mapped, shared, n = _flatten(args, in_axes)
    devs = _mesh_devices(devices, strategy)
    if strategy == "auto":
        strategy = _auto(fn, treedef, flags, mapped, shared, chunk_size, devs)
    if strategy == "loop":
        single = _single(fn, treedef, flags)
        return stack([single(mapped, shared, jnp.int32(i)) for i in range(n)])
    chunk = DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size
    return _program(fn, strategy, chunk, treedef, flags, devs)(mapped, shared)


def map_seeds(
    fn: Callable[..., PyTree],
    keys: jax.Array,
    *args: Any,
    in_axes: Any = None,
    strategy: str = "auto",
    chunk_size: int | None = None,
    devices: Sequence[Any] | None = None,
) -> PyTree:
    """``stack([fn(keys[i], *args) for i in range(N)])``: one run of ``fn`` per PRNG key.

    Args:
      fn: pure, jittable ``fn(key, *args) -> pytree``.
      keys: (N,) key array (``jax.random.split(jax.random.key(0), N)``) or (N, 2) raw keys.
      *args: arguments after the key; shared by every seed unless ``in_axes`` maps them.
      in_axes: for ``args`` only: None (all shared), 0 (all mapped, leading axis N) or one
        0/None per argument. ``keys`` is always mapped.
      strategy, chunk_size, devices: as in :func:`map_stacked`.

    Returns:
      ``fn``'s output pytree with a leading (N,) axis on every leaf.

    Raises:
      ValueError: keys that are not a batch of N >= 1 keys, or as :func:`map_stacked`.

    Example:
      >>> keys = jax.random.split(jax.random.key(0), 4)
      >>> map_seeds(lambda k, s: s * jax.random.normal(k, (3,)), keys, 2.0).shape
      (4, 3)
    """
    check_keys(keys)
    arg_axes = _check_axes(in_axes, len(args))
    return map_stacked(
        fn,
        keys,
        *args,
        in_axes=(0, *arg_axes),
        strategy=strategy,
        chunk_size=chunk_size,
        devices=devices,
    )


def init_seeds(
    init_fn: Callable[..., PyTree],
    keys: jax.Array,
    *args: Any,
    strategy: str = "auto",
    chunk_size: int | None = None,
    devices: Sequence[Any] | None = None,
) -> PyTree:
    """Stacked initial variables, one set per key: ``jax.vmap(model.init, (0, None))(keys, x)``.

    Args:
      init_fn: ``init_fn(key, *args) -> variables``, e.g. a Flax ``model.init``.
      keys: (N,) keys, as in :func:`map_seeds`.
      *args: shared example inputs, e.g. ``x`` (B, ...).
      strategy, chunk_size, devices: as in :func:`map_stacked`.

    Returns:
      ``init_fn``'s variables with a leading (N,) axis; take seed ``i`` with ``unstack(v, i)``.
    """
    return map_seeds(
        init_fn, keys, *args, strategy=strategy, chunk_size=chunk_size, devices=devices
    )
