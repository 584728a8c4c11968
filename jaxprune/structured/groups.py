"""Channel groups: which slices of which variables hold the same channel, for every zoo family.

Pruning one channel of a layer removes more than one kernel column. Its bias entry, the scale,
bias, running mean and variance of the batch norm after it, and the matching input slice of every
layer that reads it (the next conv's kernel axis -2; for a dense layer after a flatten, the rows
``c, c + C, c + 2C, ...`` of its ``(H*W*C, out)`` kernel, channel fastest) all go with it. A
:class:`ChannelGroup` lists these coupled slices (:class:`Slot`), the modules whose output carries
the channel (:class:`Site`, used by gates and Fisher scores) and the width options of
``models.get`` it sets (:class:`WidthTarget`). A :class:`Structure` is the groups of one model.

  structure = channel_groups("resnet20", width_multiplier=0.5)      # block-internal groups
  [g.name for g in structure.groups]    # ['stage1_block00/conv1', ..., 'stage3_block02/conv1']
  keep = {"stage1_block00/conv1": np.array([0, 2, 5])}               # kept channel indices
  narrow_options(structure, keep)       # {'block_widths': (3, 8, ...), 'stage_widths': ..., ...}

Groups per family (group name = the producing layer's name; the logits are never prunable):

  =====================  ===================================================================
  lenet_300_100, mlp     ``fc1 .. fc{L-1}``
  lenet5, lenet5_caffe   ``conv1 conv2`` (conv2 feeds the flattened ``fc1``), ``fc1 [fc2]``
  conv2/4/6              ``conv1 .. conv{K}`` (the last one flattened into ``fc1``), ``fc1 fc2``
  cnn1d_mnist1d          ``conv1 conv2 conv3``
  vgg*                   ``conv{i}`` (+ ``conv{i}_bn``), ``fc{j}`` (+ ``fc{j}_bn``) hidden
  resnet*                ``stage{s}_block{bb}/conv1`` (block-internal: conv1, conv1_bn, conv2's
                         input). With ``residual=True`` also the residual stream: option B
                         ``stage1`` (with the stem), ``stage2``, ``stage3``; option A one group
                         ``residual`` (see below).
  wrn*                   ``stage{s}_block{bb}/conv1``; with ``residual=True`` also ``stem`` (or
                         merged into ``stage1`` when the stem width equals it) and ``stage{s}``.
  =====================  ===================================================================

Option-A ResNets: the parameter-free shortcut zero-pads a stage's channels *after* the previous
stage's, so residual channel ``c < C1`` of stage 2 *is* channel ``c`` of stage 1 carried through
the padding. Pruning it in one stage but not the other has no narrow equivalent. We therefore
model the whole residual stream as one group ``residual`` of width ``C3`` whose channel ``c``
exists in every stage ``s`` with ``c < C_s`` (a slot of ``size = C_s`` holds channels
``0 .. C_s - 1``): removing ``c`` removes it everywhere it exists, and stage ``s`` keeps
``|keep ∩ [0, C_s)|`` channels, which stay non-decreasing as option A requires.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from jaxprune import contract, models

Path = tuple[str, ...]
Keep = dict[str, np.ndarray]
"""Kept channel indices per group name: sorted, unique int arrays. A missing group keeps all."""

# Width options of every family: dropped from user options, replaced by explicit widths.
_WIDTH_OPTIONS = (
    "widths",
    "classifier_widths",
    "stage_widths",
    "block_widths",
    "stem_width",
    "width_multiplier",
)


class Slot(NamedTuple):
    """One variable's slice that holds a group's channels.

    Attributes:
      collection: ``'params'`` or ``'batch_stats'``.
      path: keys of the leaf inside the collection, e.g. ``('conv3', 'kernel')``.
      axis: the channel axis of the leaf (-1: output channels; -2: a consumer's input channels;
        0: a bias or batch-norm vector).
      role: ``'out'`` (a producer's kernel or bias), ``'norm'`` (a batch norm over the channels),
        ``'in'`` (a consumer's kernel).
      size: channels of the group present here: channels ``0 .. size - 1`` (``< width`` only in
        option-A residual groups).
      flattened: the axis holds ``positions * size`` rows of a dense layer after a flatten,
        channel fastest (NHWC): channel ``c`` is rows ``c, c + size, c + 2 * size, ...``.
    """

    collection: str
    path: Path
    axis: int
    role: str
    size: int
    flattened: bool = False


class Site(NamedTuple):
    """A module whose output's last axis carries channels ``0 .. size - 1`` of a group.

    Multiplying every site's output by a per-channel gate ``g`` acts exactly like a channel mask
    when ``g`` is 0 or 1 (see :mod:`jaxprune.structured.gates`).
    """

    path: Path
    size: int


class WidthTarget(NamedTuple):
    """A width option of ``models.get`` set by a group: ``option[index] = |keep ∩ [0, size)|``.

    ``index`` is ``None`` for a scalar option (``stem_width``).
    """

    option: str
    index: int | None
    size: int


class ChannelGroup(NamedTuple):
    """Channels pruned together: every coupled slice, the gate sites and the widths they set.

    Attributes:
      name: e.g. ``'conv3'``, ``'stage2_block01/conv1'``, ``'stage2'``, ``'residual'``.
      width: number of channels (identities ``0 .. width - 1``).
      slots: every variable slice holding the channels.
      sites: modules whose outputs carry the channels (gates, Fisher).
      targets: the ``models.get`` width options this group sets.
    """

    name: str
    width: int
    slots: tuple[Slot, ...]
    sites: tuple[Site, ...]
    targets: tuple[WidthTarget, ...]


class Structure(NamedTuple):
    """The prunable channel groups of one model: a zoo model (:func:`channel_groups` declares
    them), or a user's Linen model declared by hand.

    A user's model is named ``"pkg.module:attr"`` (a Linen module class whose fields include
    its widths, see :func:`jaxprune.contract.load`); its groups are built from the public
    :class:`ChannelGroup`, :class:`Slot`, :class:`Site` and :class:`WidthTarget`, and every
    channel criterion, policy, gate, the surgery and the MAC counts work on it as on the zoo's
    (``tests/test_contract.py`` declares one). NNX models have no channel pruning yet
    (gates intercept Linen modules).

    Attributes:
      name: the registered model name (``models.names()``) or ``"pkg.module:attr"``.
      options: complete options with explicit widths: ``models.get(name, **options)`` rebuilds
        the model exactly (``num_classes`` included).
      groups: the groups in execution order.
      residual: whether residual-stream groups were included.
    """

    name: str
    options: Mapping[str, Any]
    groups: tuple[ChannelGroup, ...]
    residual: bool

    @property
    def model(self) -> Any:
        """The (unbound Flax Linen) model: ``models.get(self.name, **self.options)``."""
        model = models.get(self.name, **self.options)
        return model.module if isinstance(model, contract.LinenModel) else model

    @property
    def group_names(self) -> list[str]:
        """Names of the groups in execution order."""
        return [g.name for g in self.groups]

    def group(self, name: str) -> ChannelGroup:
        """The group called ``name``; a ``KeyError`` lists the valid names."""
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(f"no channel group {name!r} in {self.name}; groups: {self.group_names}")


# ---------------------------------------------------------------------------------------------
# Slot helpers.
# ---------------------------------------------------------------------------------------------


def _out(layer: Path, size: int, bias: bool) -> list[Slot]:
    slots = [Slot("params", (*layer, "kernel"), -1, "out", size)]
    if bias:
        slots.append(Slot("params", (*layer, "bias"), 0, "out", size))
    return slots


def _norm(bn: Path, size: int) -> list[Slot]:
    return [Slot("params", (*bn, leaf), 0, "norm", size) for leaf in ("scale", "bias")] + [
        Slot("batch_stats", (*bn, leaf), 0, "norm", size) for leaf in ("mean", "var")
    ]


def _in(layer: Path, size: int, flattened: bool = False) -> list[Slot]:
    # Conv kernels (..., in, out) and dense kernels (in, out) both have their input at axis -2.
    return [Slot("params", (*layer, "kernel"), -2, "in", size, flattened)]


class _Layer(NamedTuple):
    """A hidden layer of a plain chain: its name, bias, batch norm and the width it sets."""

    name: str
    bias: bool
    bn: str | None
    target: WidthTarget


def _chain(layers: Sequence[_Layer], consumers: Sequence[tuple[str, bool]]) -> list[ChannelGroup]:
    """Groups of a feed-forward chain; ``consumers[i]`` = (layer reading layers[i], flattened)."""
    groups = []
    for layer, (consumer, flattened) in zip(layers, consumers, strict=True):
        w = layer.target.size
        slots = _out((layer.name,), w, layer.bias)
        if layer.bn is not None:
            slots += _norm((layer.bn,), w)
        slots += _in((consumer,), w, flattened)
        site = Site((layer.bn or layer.name,), w)
        groups.append(ChannelGroup(layer.name, w, tuple(slots), (site,), (layer.target,)))
    return groups


def _plain(names: Sequence[str], widths: Sequence[int]) -> list[_Layer]:
    """Layers with a bias and no batch norm, setting ``widths[i]``."""
    return [
        _Layer(n, True, None, WidthTarget("widths", i, w))
        for i, (n, w) in enumerate(zip(names, widths, strict=True))
    ]


# ---------------------------------------------------------------------------------------------
# One builder per family: (module, residual) -> groups.
# ---------------------------------------------------------------------------------------------


def _mlp_groups(m: Any, residual: bool) -> list[ChannelGroup]:
    names = [f"fc{i + 1}" for i in range(len(m.widths))]
    return _chain(_plain(names, m.widths), [(f"fc{i + 2}", False) for i in range(len(names))])


def _lenet5_groups(m: Any, residual: bool) -> list[ChannelGroup]:
    layers = _plain(("conv1", "conv2", "fc1", "fc2"), m.widths)
    return _chain(layers, [("conv2", False), ("fc1", True), ("fc2", False), ("fc3", False)])


def _lenet5_caffe_groups(m: Any, residual: bool) -> list[ChannelGroup]:
    layers = _plain(("conv1", "conv2", "fc1"), m.widths)
    return _chain(layers, [("conv2", False), ("fc1", True), ("fc2", False)])


def _convnet_groups(m: Any, residual: bool) -> list[ChannelGroup]:
    k = m.num_convs
    names = [f"conv{i + 1}" for i in range(k)] + [f"fc{j + 1}" for j in range(len(m.widths) - k)]
    consumers = names[1:] + [f"fc{len(m.widths) - k + 1}"]
    flat = [i == k - 1 for i in range(len(names))]
    return _chain(_plain(names, m.widths), list(zip(consumers, flat, strict=True)))


def _cnn1d_groups(m: Any, residual: bool) -> list[ChannelGroup]:
    layers = _plain(("conv1", "conv2", "conv3"), m.widths)
    return _chain(layers, [("conv2", False), ("conv3", False), ("fc", True)])


def _vgg_groups(m: Any, residual: bool) -> list[ChannelGroup]:
    k, j = len(m.widths), len(m.classifier_widths)
    layers = [
        _Layer(f"conv{i + 1}", False, f"conv{i + 1}_bn", WidthTarget("widths", i, w))
        for i, w in enumerate(m.widths)
    ] + [
        _Layer(f"fc{i + 1}", True, f"fc{i + 1}_bn", WidthTarget("classifier_widths", i, w))
        for i, w in enumerate(m.classifier_widths)
    ]
    consumers = [(f"conv{i + 2}", False) for i in range(k - 1)] + [("fc1", True)]
    consumers += [(f"fc{i + 2}", False) for i in range(j)]
    return _chain(layers, consumers)


def _block_groups(m: Any) -> list[ChannelGroup]:
    """Block-internal groups (conv1's output) of a ResNet or WRN."""
    n, groups = m.blocks_per_stage, []
    for s in range(3):
        for b in range(n):
            blk = f"stage{s + 1}_block{b:02d}"
            w = m.block_widths[s * n + b]
            slots = _out((blk, "conv1"), w, False) + _norm((blk, "conv1_bn"), w)
            slots += _in((blk, "conv2"), w)
            groups.append(
                ChannelGroup(
                    f"{blk}/conv1",
                    w,
                    tuple(slots),
                    (Site((blk, "conv1_bn"), w),),
                    (WidthTarget("block_widths", s * n + b, w),),
                )
            )
    return groups


def _resnet_groups(m: Any, residual: bool) -> list[ChannelGroup]:
    groups = _block_groups(m)
    if not residual:
        return groups
    n, widths = m.blocks_per_stage, m.stage_widths
    # Per stage: (out/norm slots, in slots, sites) of the residual stream, at that stage's size.
    stage_slots: list[list[Slot]] = []
    stage_sites: list[list[Site]] = []
    for s in range(3):
        w = widths[s]
        slots: list[Slot] = []
        sites: list[Site] = []
        if s == 0:  # stage 1 starts with an identity block: the stem writes this stream
            slots += _out(("stem",), w, False) + _norm(("stem_bn",), w)
            slots += _in(("stage1_block00", "conv1"), w)
            sites.append(Site(("stem_bn",), w))
        for b in range(n):
            blk = f"stage{s + 1}_block{b:02d}"
            if b == 0 and s > 0 and m.shortcut == "B":
                slots += _out((blk, "shortcut"), w, False) + _norm((blk, "shortcut_bn"), w)
                sites.append(Site((blk, "shortcut_bn"), w))
            slots += _out((blk, "conv2"), w, False) + _norm((blk, "conv2_bn"), w)
            sites.append(Site((blk, "conv2_bn"), w))
            # Readers of this stage's stream: every later block of the stage, then the next
            # stage's first block (conv1 and an option-B shortcut), or the classifier.
            if b < n - 1:
                slots += _in((f"stage{s + 1}_block{b + 1:02d}", "conv1"), w)
        if s < 2:
            nxt = f"stage{s + 2}_block00"
            slots += _in((nxt, "conv1"), w)
            if m.shortcut == "B":
                slots += _in((nxt, "shortcut"), w)
        else:
            slots += _in(("fc",), w)
        stage_slots.append(slots)
        stage_sites.append(sites)
    if m.shortcut == "B":
        return groups + [
            ChannelGroup(
                f"stage{s + 1}",
                widths[s],
                tuple(stage_slots[s]),
                tuple(stage_sites[s]),
                (WidthTarget("stage_widths", s, widths[s]),),
            )
            for s in range(3)
        ]
    return groups + [
        ChannelGroup(
            "residual",
            max(widths),
            tuple(x for slots in stage_slots for x in slots),
            tuple(x for sites in stage_sites for x in sites),
            tuple(WidthTarget("stage_widths", s, widths[s]) for s in range(3)),
        )
    ]


def _wrn_groups(m: Any, residual: bool) -> list[ChannelGroup]:
    groups = _block_groups(m)
    if not residual:
        return groups
    n, widths = m.blocks_per_stage, m.stage_widths
    # Each stream is read through a batch norm (a block's preact_bn or final_bn) whose output
    # feeds conv1 and the shortcut; gates sit on those batch norms' outputs (a gate before a
    # batch norm would not act like a mask: BN(0) = its bias).
    streams: list[tuple[str, int, list[Slot], list[Site], list[WidthTarget]]] = []
    w0 = m.stem_width
    stem = (_out(("stem",), w0, False), [WidthTarget("stem_width", None, w0)])
    for s in range(3):
        w = widths[s]
        slots: list[Slot] = []
        sites: list[Site] = []
        targets = [WidthTarget("stage_widths", s, w)]
        if s == 0:
            first = "stage1_block00"
            if w0 == w:  # stage 1's first block is an identity: the stem writes this stream
                slots += stem[0] + _norm((first, "preact_bn"), w) + _in((first, "conv1"), w)
                targets = stem[1] + targets
                sites = [Site((first, "preact_bn"), w)]
            else:
                readers = _norm((first, "preact_bn"), w0) + _in((first, "conv1"), w0)
                readers += _in((first, "shortcut"), w0)
                streams.append(
                    ("stem", w0, stem[0] + readers, [Site((first, "preact_bn"), w0)], stem[1])
                )
        for b in range(n):
            blk = f"stage{s + 1}_block{b:02d}"
            slots += _out((blk, "conv2"), w, False)
            if b == 0 and (s > 0 or w0 != w):
                slots += _out((blk, "shortcut"), w, False)
            reader = f"stage{s + 1}_block{b + 1:02d}" if b < n - 1 else None
            if reader is None and s < 2:
                reader = f"stage{s + 2}_block00"
            if reader is not None:
                slots += _norm((reader, "preact_bn"), w) + _in((reader, "conv1"), w)
                if reader.endswith("block00"):
                    slots += _in((reader, "shortcut"), w)
                sites.append(Site((reader, "preact_bn"), w))
        if s == 2:
            slots += _norm(("final_bn",), w) + _in(("fc",), w)
            sites.append(Site(("final_bn",), w))
        streams.append((f"stage{s + 1}", w, slots, sites, targets))
    return groups + [
        ChannelGroup(name, w, tuple(slots), tuple(sites), tuple(targets))
        for name, w, slots, sites, targets in streams
    ]


_BUILDERS: dict[type, Callable[[Any, bool], list[ChannelGroup]]] = {
    models.MLP: _mlp_groups,
    models.LeNet5: _lenet5_groups,
    models.LeNet5Caffe: _lenet5_caffe_groups,
    models.ConvNet: _convnet_groups,
    models.CNN1D: _cnn1d_groups,
    models.VGG: _vgg_groups,
    models.ResNet: _resnet_groups,
    models.WideResNet: _wrn_groups,
}
_RESIDUAL = (models.ResNet, models.WideResNet)


def explicit_widths(m: Any) -> dict[str, Any]:
    """The width options that rebuild zoo module ``m`` exactly (multiplier 1), e.g.
    ``{'stage_widths': (16, 32, 64), 'block_widths': (16, ...)}`` for a ResNet."""
    if isinstance(m, models.VGG):
        return {"widths": tuple(m.widths), "classifier_widths": tuple(m.classifier_widths)}
    if isinstance(m, models.ResNet):
        return {"stage_widths": tuple(m.stage_widths), "block_widths": tuple(m.block_widths)}
    if isinstance(m, models.WideResNet):
        return {
            "stem_width": m.stem_width,
            "stage_widths": tuple(m.stage_widths),
            "block_widths": tuple(m.block_widths),
        }
    return {"widths": tuple(m.widths)}


def _check_slots(name: str, groups: Sequence[ChannelGroup]) -> None:
    seen: dict[tuple[str, Path, int], str] = {}
    for g in groups:
        for s in g.slots:
            key = (s.collection, s.path, s.axis)
            if key in seen:  # a bug in a builder, not a user error
                raise AssertionError(f"{name}: {key} in groups {seen[key]!r} and {g.name!r}")
            seen[key] = g.name


def channel_groups(
    name: str, *, residual: bool = False, num_classes: int = 10, **options: Any
) -> Structure:
    """The prunable channel groups of the zoo model ``models.get(name, **options)``.

    Args:
      name: a registered model name (``models.names()``).
      residual: also return residual-stream groups (ResNets and WRNs only; see the module
        docstring for option A).
      num_classes: number of logits (never pruned).
      **options: the model's options, as for ``models.get`` (widths, width_multiplier, ...).

    Returns:
      A :class:`Structure` whose ``options`` name every width explicitly.

    Raises:
      ValueError: an unknown model or option (from ``models.get``), a family without channel
        groups, or ``residual=True`` for a family without residual connections.
    """
    module = models.get(name, num_classes=num_classes, **options)
    # an ``init=`` scheme subclasses the family (models/_init.py: with_scheme): look up the MRO
    builder = next((_BUILDERS[t] for t in type(module).__mro__ if t in _BUILDERS), None)
    if builder is None:
        supported = ", ".join(t.__name__ for t in _BUILDERS)
        raise ValueError(
            f"no channel groups for model {name!r} ({type(module).__name__}); "
            f"supported families: {supported}"
        )
    if residual and not isinstance(module, _RESIDUAL):
        raise ValueError(
            f"residual=True needs a ResNet or WRN; {name!r} has no residual stream "
            "(its groups are all returned with residual=False)"
        )
    explicit = {k: v for k, v in options.items() if k not in _WIDTH_OPTIONS}
    explicit.update(explicit_widths(module), num_classes=num_classes)
    if models.get(name, **explicit) != module:  # pragma: no cover - a zoo/groups mismatch
        raise AssertionError(f"explicit widths {explicit} do not rebuild {module}")
    groups = tuple(builder(module, residual))
    _check_slots(name, groups)
    return Structure(name, explicit, groups, residual)


# ---------------------------------------------------------------------------------------------
# Keep-sets.
# ---------------------------------------------------------------------------------------------


def keep_all(structure: Structure) -> Keep:
    """Every channel of every group: ``{name: arange(width)}``."""
    return {g.name: np.arange(g.width) for g in structure.groups}


def keep_from_masks(masks: Mapping[str, Any]) -> Keep:
    """Keep-sets from bool masks ``{group: (width,) bool}`` (True = kept)."""
    return {k: np.flatnonzero(np.asarray(v)) for k, v in masks.items()}


def check_keep(structure: Structure, keep: Mapping[str, Iterable[int]]) -> Keep:
    """Validate keep-sets and complete them (missing groups keep every channel).

    Args:
      structure: the groups.
      keep: ``{group name: kept channel indices}`` for some of the groups.

    Returns:
      ``{name: sorted unique int64 array}`` for every group.

    Raises:
      KeyError: an unknown group (the message lists the valid ones).
      ValueError: indices out of ``[0, width)``, repeated, or a group left without channels, or
        an option-A residual group that would empty a stage.
    """
    names = structure.group_names
    unknown = sorted(set(keep) - set(names))
    if unknown:
        raise KeyError(f"unknown channel group(s) {unknown} for {structure.name}; groups: {names}")
    out = keep_all(structure)
    for g in structure.groups:
        if g.name not in keep:
            continue
        idx = np.asarray(keep[g.name]).reshape(-1)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"group {g.name!r}: keep indices must be ints, got {idx.dtype}")
        idx = idx.astype(np.int64)
        if np.unique(idx).size != idx.size:
            raise ValueError(f"group {g.name!r}: repeated keep indices {idx}")
        if idx.size and (idx.min() < 0 or idx.max() >= g.width):
            raise ValueError(
                f"group {g.name!r}: keep indices must lie in [0, {g.width}), got {idx}"
            )
        for t in g.targets:
            if not np.any(idx < t.size):
                where = "" if t.size == g.width else f" below {t.size} (sets {t.option}[{t.index}])"
                raise ValueError(
                    f"group {g.name!r} would keep no channel{where}: a layer cannot be empty"
                )
        out[g.name] = np.sort(idx)
    return out


def narrow_options(structure: Structure, keep: Mapping[str, Iterable[int]]) -> dict[str, Any]:
    """Options of the narrower model: ``models.get(structure.name, **narrow_options(...))``.

    Args:
      structure: the wide model's groups.
      keep: kept channel indices per group (missing groups keep all).

    Returns:
      ``structure.options`` with every width a group sets replaced by its kept count.

    Raises:
      ValueError: invalid keep-sets (see :func:`check_keep`), or a WRN whose first block would
        turn from a projection shortcut into an identity (stem and stage-1 widths made equal).
    """
    keep = check_keep(structure, keep)
    opts = {k: (list(v) if isinstance(v, tuple) else v) for k, v in structure.options.items()}
    for g in structure.groups:
        for t in g.targets:
            n = int(np.sum(keep[g.name] < t.size))
            if t.index is None:
                opts[t.option] = n
            else:
                opts[t.option][t.index] = n
    opts = {k: (tuple(v) if isinstance(v, list) else v) for k, v in opts.items()}
    old = structure.options
    if "stem_width" in old and old["stem_width"] != old["stage_widths"][0]:
        if opts["stem_width"] == opts["stage_widths"][0]:
            raise ValueError(
                f"pruning would make the stem ({opts['stem_width']}) and stage 1 "
                f"({opts['stage_widths'][0]}) equally wide, which turns stage1_block00's "
                "projection shortcut into an identity (a different architecture); keep one "
                "more or one fewer channel in 'stem' or 'stage1'"
            )
    return opts
