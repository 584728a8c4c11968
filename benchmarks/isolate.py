"""PyTorch implementations in a process of their own, timed interleaved with jax's.

Inside one process, jax calls measured ~30% slower right after PyTorch calls than alone (LeNet
SNIP, 32 seeds: 0.201 s interleaved with PyTorch vs 0.148 s without it; importing torch, or
using it once before, changed nothing: the slowdown follows PyTorch's calls). So the benchmark
worker keeps jax in its own process and asks a *torch-side* process, spawned with the same
workload spec, to run each ``torch*`` implementation when the interleaved schedule reaches it.
Each side times its own calls; the torch side reports its time over the pipe (the round trip is
not counted). The two processes never compute at the same time.

The torch side builds the same workload (same seeds, so the same Flax variables and batches it
copies into its PyTorch models) and runs the correctness checks of its own implementations; the
jax outputs those checks compare against (``REFERENCE_IMPLS``) are sent to it as NumPy arrays.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback
from typing import Any, NamedTuple

import numpy as np

# jax outputs the torch side's checks compare against (``workloads.build_score``'s reference).
REFERENCE_IMPLS = ("jax_multi", "jax_multi_f32")


class Timed(NamedTuple):
    """What a remote implementation returns: its own wall time, measured on its side."""

    seconds: float


def _to_numpy(tree: Any) -> Any:
    import jax

    return jax.tree.map(np.asarray, tree)


def _serve(conn: Any, spec: dict[str, Any], prefix: str, use_torch: bool) -> None:
    """The other side: build the workload, then run its ``prefix*`` implementations on request
    until "exit"."""
    try:
        from benchmarks import workloads

        wl = workloads.build(spec, use_torch=use_torch)
        conn.send(("ready", [k for k in wl.impls if k.startswith(prefix)]))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises
        conn.send(("error", traceback.format_exc()))
        return
    while True:
        msg = conn.recv()
        try:
            if msg[0] == "exit":
                conn.send(("ok", None))
                return
            if msg[0] == "check":  # a jax reference output
                wl.check(msg[1], msg[2])
                conn.send(("ok", None))
            elif msg[0] == "call":
                _, name, first = msg
                t0 = time.perf_counter()
                out = wl.impls[name]()
                dt = time.perf_counter() - t0
                if first:
                    wl.check(name, out)
                conn.send(("ok", dt))
            elif msg[0] == "notes":
                conn.send(("ok", wl.notes))
            else:
                conn.send(("error", f"unknown request {msg[0]!r}"))
        except BaseException:  # noqa: BLE001
            conn.send(("error", traceback.format_exc()))


class TorchSide:
    """A spawned process holding a workload's PyTorch implementations.

    ``prefix``/``use_torch`` choose what it serves (tests serve ``jax*`` implementations
    without PyTorch to exercise the machinery).
    """

    def __init__(self, spec: dict[str, Any], *, prefix: str = "torch", use_torch: bool = True,
                 start_timeout_s: float = 600.0) -> None:
        ctx = mp.get_context("spawn")  # a fresh interpreter: nothing inherited from jax's side
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, spec, prefix, use_torch),
                                 daemon=True)
        self._proc.start()
        child.close()
        self._first: set[str] = set()
        if not self._conn.poll(start_timeout_s):
            self.close()
            raise RuntimeError(f"torch side did not start within {start_timeout_s} s")
        self.names: list[str] = self._reply()

    def _reply(self) -> Any:
        status, value = self._conn.recv()
        if status != "ok" and status != "ready":
            raise RuntimeError(f"torch side failed:\n{value}")
        return value

    def _request(self, *msg: Any) -> Any:
        self._conn.send(msg)
        return self._reply()

    def thunk(self, name: str):
        """A zero-argument callable running ``name`` remotely; returns :class:`Timed`."""

        def call() -> Timed:
            first = name not in self._first
            self._first.add(name)
            return Timed(self._request("call", name, first))

        return call

    def reference(self, name: str, out: Any) -> None:
        """Hand a jax output to the torch side's checks (only ``REFERENCE_IMPLS``)."""
        if name in REFERENCE_IMPLS:
            self._request("check", name, _to_numpy(out))

    def notes(self) -> dict[str, Any]:
        return self._request("notes")

    def close(self) -> None:
        if self._proc.is_alive():
            try:
                self._conn.send(("exit",))
                self._conn.poll(10) and self._conn.recv()
            except (OSError, EOFError):
                pass
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
        self._conn.close()
