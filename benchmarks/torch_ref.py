"""PyTorch reference implementations, written the way the reference repos do it.

Synaptic-Flow (ganguli-lab/Synaptic-Flow, ``Layers/layers.py``, ``Pruners/pruners.py``,
``prune.py``) and open_lth keep a ``weight_mask`` buffer next to every prunable weight and
multiply ``weight * weight_mask`` in ``forward``; scores come from autograd, one network (one
seed) at a time, and the global mask is a ``kthvalue`` threshold over all scores. This module
copies that structure:

  MaskedLinear / MaskedConv2d     ``F.linear(x, weight * weight_mask, bias)``
  lenet_300_100 / conv6 / resnet20   the zoo's architectures (parameter counts match jaxprune)
  snip / grasp / synflow           the ``Pruner.score`` methods of Synaptic-Flow
  prune_loop                       ``prune.py``'s loop: score, threshold, repeat (SynFlow: 100)
  train_step                       masked SGD with momentum (open_lth/Synaptic-Flow style)

Weights are copied from the jaxprune (Flax) variables with :func:`load_flax`, so both sides score
the same network on the same batch; the benchmark checks that SNIP scores agree.

Only imported when torch is installed (``pip install -e .[bench]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------------------------
# Masked layers (Synaptic-Flow Layers/layers.py).
# ---------------------------------------------------------------------------------------------


class MaskedLinear(nn.Linear):
    """``nn.Linear`` with a ``weight_mask`` buffer multiplied into the weight in ``forward``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias)
        self.register_buffer("weight_mask", torch.ones_like(self.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.weight_mask, self.bias)


class MaskedConv2d(nn.Conv2d):
    """``nn.Conv2d`` with a ``weight_mask`` buffer multiplied into the weight in ``forward``."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.register_buffer("weight_mask", torch.ones_like(self.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.weight_mask, self.bias)


def masked_parameters(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``[(weight_mask, weight)]`` of every masked layer, in module order (prunable = weights)."""
    return [
        (m.weight_mask, m.weight)
        for m in model.modules()
        if isinstance(m, (MaskedLinear, MaskedConv2d))
    ]


# ---------------------------------------------------------------------------------------------
# Models.
# ---------------------------------------------------------------------------------------------


class LeNet300100(nn.Module):
    """784-300-100-10 ReLU MLP (266,610 params)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.fc1 = MaskedLinear(784, 300)
        self.fc2 = MaskedLinear(300, 100)
        self.fc3 = MaskedLinear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (N, 784)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class Conv6(nn.Module):
    """Conv-6 of Frankle & Carbin: 64,64,pool,128,128,pool,256,256,pool, fc 256,256,10 (2.26M)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        widths = (64, 64, 128, 128, 256, 256)
        convs, c = [], 3
        for w in widths:
            convs.append(MaskedConv2d(c, w, 3, padding=1))
            c = w
        self.convs = nn.ModuleList(convs)
        self.fc1 = MaskedLinear(256 * 4 * 4, 256)
        self.fc2 = MaskedLinear(256, 256)
        self.fc3 = MaskedLinear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if i % 2 == 1:
                x = F.max_pool2d(x, 2)
        x = x.flatten(1)  # (N, C*H*W), NCHW order
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class BasicBlock(nn.Module):
    """Post-activation basic block with an option-A shortcut (zero channels appended at the end)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = MaskedConv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.conv1_bn = nn.BatchNorm2d(c_out)
        self.conv2 = MaskedConv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.conv2_bn = nn.BatchNorm2d(c_out)
        self.stride, self.pad = stride, c_out - c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv1_bn(self.conv1(x)))
        y = self.conv2_bn(self.conv2(y))
        s = x
        if self.stride != 1 or self.pad:
            s = F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, 0, self.pad))
        return F.relu(y + s)


class ResNet20(nn.Module):
    """CIFAR ResNet-20, option A (269,722 params, like ``models.get("resnet20")``)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = MaskedConv2d(3, 16, 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(16)
        blocks, c = [], 16
        for s, w in enumerate((16, 32, 64)):
            for b in range(3):
                blocks.append(BasicBlock(c, w, 2 if (s > 0 and b == 0) else 1))
                c = w
        self.blocks = nn.ModuleList(blocks)
        self.fc = MaskedLinear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_bn(self.stem(x)))
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean(dim=(2, 3)))


MODELS = {"lenet_300_100": LeNet300100, "conv6": Conv6, "resnet20": ResNet20}


def build(name: str) -> nn.Module:
    """A torch model by jaxprune zoo name."""
    if name not in MODELS:
        raise ValueError(f"no torch reference for {name!r}; valid: {sorted(MODELS)}")
    return MODELS[name]()


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# Copying Flax variables in.
# ---------------------------------------------------------------------------------------------


def _t(a: Any) -> torch.Tensor:
    return torch.from_numpy(np.array(a, np.float32))


def _dense(layer: MaskedLinear, p: dict, perm: np.ndarray | None = None) -> None:
    w = np.asarray(p["kernel"]).T  # (out, in)
    if perm is not None:
        w = w[:, perm]
    layer.weight.data.copy_(_t(w))
    layer.bias.data.copy_(_t(p["bias"]))


def _conv(layer: MaskedConv2d, p: dict) -> None:
    layer.weight.data.copy_(_t(np.transpose(np.asarray(p["kernel"]), (3, 2, 0, 1))))  # OIHW
    if layer.bias is not None:
        layer.bias.data.copy_(_t(p["bias"]))


def _bn(layer: nn.BatchNorm2d, p: dict, s: dict) -> None:
    layer.weight.data.copy_(_t(p["scale"]))
    layer.bias.data.copy_(_t(p["bias"]))
    layer.running_mean.copy_(_t(s["mean"]))
    layer.running_var.copy_(_t(s["var"]))


def load_flax(model: nn.Module, variables: Any) -> nn.Module:
    """Copy one network's Flax variables (the zoo's layout) into the matching torch model."""
    p, s = variables["params"], variables.get("batch_stats", {})
    with torch.no_grad():
        if isinstance(model, LeNet300100):
            for name in ("fc1", "fc2", "fc3"):
                _dense(getattr(model, name), p[name])
        elif isinstance(model, Conv6):
            for i, conv in enumerate(model.convs):
                _conv(conv, p[f"conv{i + 1}"])
            # fc1 input: Flax flattens (H, W, C), torch (C, H, W).
            perm = np.arange(4 * 4 * 256).reshape(4, 4, 256).transpose(2, 0, 1).ravel()
            _dense(model.fc1, p["fc1"], perm)
            _dense(model.fc2, p["fc2"])
            _dense(model.fc3, p["fc3"])
        elif isinstance(model, ResNet20):
            _conv(model.stem, p["stem"])
            _bn(model.stem_bn, p["stem_bn"], s["stem_bn"])
            names = [f"stage{st}_block{b:02d}" for st in (1, 2, 3) for b in range(3)]
            for block, name in zip(model.blocks, names, strict=True):
                for c in ("conv1", "conv2"):
                    _conv(getattr(block, c), p[name][c])
                    _bn(getattr(block, f"{c}_bn"), p[name][f"{c}_bn"], s[name][f"{c}_bn"])
            _dense(model.fc, p["fc"])
        else:
            raise TypeError(f"unknown model {type(model).__name__}")
    return model


def to_nchw(x: Any) -> torch.Tensor:
    """(N, H, W, C) array -> (N, C, H, W) contiguous float32 tensor."""
    a = np.array(x, np.float32)  # a writable copy (a jax array's view is read-only)
    if a.ndim == 4:
        a = a.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(a))


# ---------------------------------------------------------------------------------------------
# Pruners (Synaptic-Flow Pruners/pruners.py), one network at a time.
# ---------------------------------------------------------------------------------------------


def snip_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """SNIP: ``|dL/d(mask)|`` with the masks made differentiable (= ``|w * dL/dw|``)."""
    mp = masked_parameters(model)
    for m, _ in mp:
        m.requires_grad = True
    F.cross_entropy(model(x), y).backward()
    scores = []
    for m, p in mp:
        scores.append(m.grad.detach().abs())
        p.grad = None
        m.grad = None
        m.requires_grad = False
    norm = torch.sum(torch.cat([s.flatten() for s in scores]))
    return [s.div_(norm) for s in scores]


def grasp_scores(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, temp: float = 200.0, eps: float = 1e-10
) -> list[torch.Tensor]:
    """GraSP: ``theta * (H g)`` via a gradient without graph, then one with ``create_graph``."""
    weights = [p for _, p in masked_parameters(model)]
    loss = F.cross_entropy(model(x) / temp, y)
    grads = torch.autograd.grad(loss, weights, create_graph=False)
    stopped = torch.cat([g.reshape(-1) for g in grads])
    loss = F.cross_entropy(model(x) / temp, y)
    grads = torch.autograd.grad(loss, weights, create_graph=True)
    (stopped * torch.cat([g.reshape(-1) for g in grads])).sum().backward()
    scores = [(p.grad * p.data).detach().clone() for p in weights]
    for p in model.parameters():
        p.grad = None
    norm = torch.abs(torch.sum(torch.cat([s.flatten() for s in scores]))) + eps
    return [s.div_(norm) for s in scores]


def synflow_scores(model: nn.Module, input_shape: tuple[int, ...]) -> list[torch.Tensor]:
    """SynFlow: linearize (abs of every state tensor), ones input, ``|theta * dR/dtheta|``."""
    with torch.no_grad():
        signs = {}
        for name, t in model.state_dict().items():
            signs[name] = torch.sign(t)
            t.abs_()
    # The model's dtype: float32 as in the reference, float64 for the same-precision row.
    ones = torch.ones((1, *input_shape), dtype=next(model.parameters()).dtype)
    torch.sum(model(ones)).backward()
    weights = [p for _, p in masked_parameters(model)]
    scores = [(p.grad * p).detach().abs() for p in weights]
    for p in model.parameters():
        p.grad = None
    with torch.no_grad():
        for name, t in model.state_dict().items():
            t.mul_(signs[name])
    return scores


def global_mask(model: nn.Module, scores: list[torch.Tensor], density: float,
                count: str = "truncate") -> None:
    """Synaptic-Flow ``_global_mask``: keep scores above the ``k``-th smallest (``kthvalue``).

    ``k = int((1 - density) * n)`` as in the reference (``count="truncate"``); ``"round"`` rounds
    instead, as jaxprune's ``schedules.keep_counts`` does (used only by
    ``benchmarks.probes synflow-agreement`` to show where the two sides' masks part).
    """
    flat = torch.cat([s.flatten() for s in scores])
    pruned = (1.0 - density) * flat.numel()
    if count not in ("truncate", "round"):
        raise ValueError(f"count must be 'truncate' or 'round', got {count!r}")
    k = int(pruned) if count == "truncate" else int(round(pruned))
    if k < 1:
        return
    threshold, _ = torch.kthvalue(flat, k)
    zero, one = torch.tensor([0.0]), torch.tensor([1.0])
    for (mask, _), s in zip(masked_parameters(model), scores, strict=True):
        mask.copy_(torch.where(s <= threshold, zero, one))


def prune_loop(
    model: nn.Module,
    method: str,
    sparsity: float,
    batch: tuple[torch.Tensor, torch.Tensor],
    input_shape: tuple[int, ...],
    rounds: int = 1,
    count: str = "truncate",
) -> list[torch.Tensor]:
    """Synaptic-Flow ``prune_loop`` (eval mode, exponential schedule); returns the masks.

    ``count``: how a round's density becomes a count (:func:`global_mask`)."""
    model.eval()
    x, y = batch
    with torch.no_grad():
        for m, _ in masked_parameters(model):
            m.fill_(1.0)
    for epoch in range(rounds):
        if method == "snip":
            scores = snip_scores(model, x, y)
        elif method == "grasp":
            scores = grasp_scores(model, x, y)
        elif method == "synflow":
            scores = synflow_scores(model, input_shape)
        else:
            raise ValueError(f"unknown method {method!r}")
        density = (1.0 - sparsity) ** ((epoch + 1) / rounds)
        with torch.no_grad():
            global_mask(model, scores, density, count)
    return [m.clone() for m, _ in masked_parameters(model)]


# ---------------------------------------------------------------------------------------------
# Masked training.
# ---------------------------------------------------------------------------------------------


def random_masks(model: nn.Module, sparsity: float, seed: int = 0) -> None:
    """Fill every ``weight_mask`` with a random mask of the given sparsity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m, _ in masked_parameters(model):
            m.copy_((torch.rand(m.shape, generator=g) >= sparsity).float())


def make_optimizer(
    model: nn.Module, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                           weight_decay=weight_decay)


def train_step(
    model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """One SGD step on a masked model (pruned weights get zero gradient through the mask)."""
    model.train()
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.detach()


# ---------------------------------------------------------------------------------------------
# Masks back in the Flax layout (to compare with jaxprune's).
# ---------------------------------------------------------------------------------------------


def flax_kernel_paths(name: str) -> list[tuple[str, ...]]:
    """Param paths of the prunable kernels, in :func:`masked_parameters` order."""
    if name == "lenet_300_100":
        return [(f"fc{i}", "kernel") for i in (1, 2, 3)]
    if name == "conv6":
        return [(f"conv{i}", "kernel") for i in range(1, 7)] + [
            (f"fc{i}", "kernel") for i in (1, 2, 3)
        ]
    if name == "resnet20":
        blocks = [f"stage{s}_block{b:02d}" for s in (1, 2, 3) for b in range(3)]
        return [("stem", "kernel")] + [
            (blk, c, "kernel") for blk in blocks for c in ("conv1", "conv2")
        ] + [("fc", "kernel")]
    raise ValueError(f"no torch reference for {name!r}")


def to_flax_layout(name: str, tensors: list[torch.Tensor]) -> dict[tuple[str, ...], np.ndarray]:
    """``{flax path: array in the Flax layout}`` from per-layer torch tensors (masks, scores)."""
    out = {}
    for path, m in zip(flax_kernel_paths(name), tensors, strict=True):
        a = m.detach().numpy()
        if a.ndim == 4:
            a = a.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        elif name == "conv6" and path[0] == "fc1":
            perm = np.arange(4 * 4 * 256).reshape(4, 4, 256).transpose(2, 0, 1).ravel()
            k = np.empty((a.shape[1], a.shape[0]), a.dtype)
            k[perm] = a.T  # torch input i reads Flax input perm[i]
            a = k
        else:
            a = a.T  # (out, in) -> (in, out)
        out[path] = a
    return out


def masks_to_flax(name: str, masks: list[torch.Tensor]) -> dict[tuple[str, ...], np.ndarray]:
    """``{flax path: bool array in the Flax layout}`` from torch ``weight_mask`` tensors."""
    return {p: a > 0.5 for p, a in to_flax_layout(name, masks).items()}
