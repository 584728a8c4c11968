"""A run's working directory: config, JSON-lines metrics, orbax checkpoints, final results.

Layout::

  <workdir>/config.json       the full run configuration (written once, checked on resume)
  <workdir>/metrics.jsonl     one JSON object per epoch
  <workdir>/checkpoints/<N>/  orbax checkpoint after epoch N (state + metric history)
  <workdir>/snapshots/<S>/    variables captured after step S (``fit(snapshot_steps=...)``)
  <workdir>/results.json      final summary, written when the run completes

Every JSON file is written atomically (temporary file + ``os.replace``), and the metric history is
stored inside each checkpoint, so a run killed at any moment resumes from its last checkpoint with
a metrics file that matches it exactly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

PyTree = Any


#: Config fields that say where inputs were read from, not what the run is: recorded in
#: ``config.json`` but not compared on resume (the same data in another folder, a trailing slash
#: or ``$JAXPRUNE_DATA_DIR`` instead of ``--data-dir`` must not block resuming). What the inputs
#: ARE is compared through fingerprints (:func:`fingerprint`) stored beside them.
LOCATION_FIELDS = ("data_dir", "from_workdir", "scorer")


def fingerprint(tree: Any) -> str:
    """A short content hash of a pytree of arrays (shapes, dtypes and bytes of every leaf).

    Two trees get the same fingerprint exactly when their leaves are equal bit for bit (and
    their structure agrees); used to record which data, initial weights or masks a run used.
    """
    h = hashlib.blake2b(digest_size=12)
    leaves, treedef = jax.tree.flatten(tree)
    h.update(str(treedef).encode())
    for leaf in leaves:
        a = np.ascontiguousarray(np.asarray(jax.device_get(leaf)))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.view(np.uint8).reshape(-1) if a.size else b"")
    return h.hexdigest()


def check_or_write_config(path: str | os.PathLike, config: Mapping[str, Any]) -> None:
    """Write ``config`` to ``path`` (a ``config.json``); if one is there, require it to be equal.

    Every field is compared except :data:`LOCATION_FIELDS`. Nothing is written when the check
    fails, so a refused command leaves the workdir as it was.

    Raises:
      ValueError: naming the fields that differ (old -> new).
    """
    path = Path(path)
    config = json.loads(json.dumps(dict(config)))  # normalise tuples etc. as JSON would
    if path.exists():
        old = json.loads(path.read_text())
        diff = sorted(k for k in set(old) | set(config)
                      if k not in LOCATION_FIELDS and old.get(k) != config.get(k))
        if diff:
            details = ", ".join(f"{k}: {_short(old.get(k))} -> {_short(config.get(k))}"
                                for k in diff)
            raise ValueError(
                f"workdir {path.parent} holds a run with a different configuration ({details}). "
                "Rerun with the same settings to resume it, or use a new workdir."
            )
        return
    write_json_atomic(path, config)


def _short(v: Any, limit: int = 60) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` so that readers see the old or the new file, never half."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (same-directory temp file, fsync, ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; result files get the usual mode
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block ends, then deliver it to the handler in place before.

    Orbax finishes a checkpoint in a background thread; an interrupt that lands in the main
    thread while it waits leaves the save half-done (a traceback from orbax, or a hang in
    ``close``). Inside this block the save completes, and the held signal is raised again right
    after (``signal.raise_signal``), so Python's default handler raises ``KeyboardInterrupt``
    there, an enclosing block holds it in turn, and an ignored SIGINT (a background job) stays
    ignored. Outside the main thread (signals cannot be handled there) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, None):  # ignored, or a handler not set from Python
        yield
        return
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        signal.raise_signal(signal.SIGINT)


def write_npz_atomic(path: str | os.PathLike, arrays: Mapping[str, Any]) -> None:
    """``np.savez_compressed`` to a temporary file beside ``path``, then ``os.replace``."""
    path = Path(path)
    tmp = path.with_suffix(".tmp.npz")
    try:
        np.savez_compressed(tmp, **{k: np.asarray(v) for k, v in arrays.items()})
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_tree(path: str | os.PathLike, tree: PyTree) -> None:
    """Save a pytree of arrays to the folder ``path`` with orbax (replacing it; blocking; a
    Ctrl-C meanwhile is raised once the folder is complete)."""
    with sigint_deferred(), ocp.StandardCheckpointer() as ckpt:
        ckpt.save(Path(path).absolute(), tree, force=True)


class Workdir:
    """Files of one run. Creating it creates the directory; nothing else happens until asked."""

    def __init__(self, path: str | os.PathLike, *, max_to_keep: int = 2):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.config_path = self.path / "config.json"
        self.metrics_path = self.path / "metrics.jsonl"
        self.results_path = self.path / "results.json"
        self._manager = ocp.CheckpointManager(
            (self.path / "checkpoints").absolute(),
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        )

    # -- config --------------------------------------------------------------------------------
    def write_or_check_config(self, config: Mapping[str, Any]) -> None:
        """Write ``config``; if the workdir already holds one, require it to be identical
        (:func:`check_or_write_config`).

        Raises:
          ValueError: naming the fields that differ, when resuming with another configuration.
        """
        check_or_write_config(self.config_path, config)

    # -- metrics -------------------------------------------------------------------------------
    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line]

    def write_metrics(self, history: list[Mapping[str, Any]]) -> None:
        """Replace the metrics file with ``history`` (atomically)."""
        write_text_atomic(
            self.metrics_path, "".join(json.dumps(dict(r), sort_keys=True) + "\n" for r in history)
        )

    # -- checkpoints ---------------------------------------------------------------------------
    def latest_epoch(self) -> int | None:
        """The epoch of the newest complete checkpoint, or ``None``."""
        return self._manager.latest_step()

    def save(self, epoch: int, state: PyTree, history: list[Mapping[str, Any]]) -> None:
        """Checkpoint ``state`` and the metric ``history`` after ``epoch`` (blocking; a Ctrl-C
        meanwhile is raised once the checkpoint is complete, see :func:`sigint_deferred`)."""
        with sigint_deferred():
            self._manager.save(
                epoch,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state),
                    history=ocp.args.JsonSave({"history": [dict(r) for r in history]}),
                ),
            )
            self._manager.wait_until_finished()

    def restore(self, epoch: int, like: PyTree) -> tuple[PyTree, list[dict[str, Any]]]:
        """Restore the state saved after ``epoch`` into the structure of ``like``."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        out = self._manager.restore(
            epoch,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), history=ocp.args.JsonRestore()
            ),
        )
        return out["state"], list(out["history"]["history"])

    def save_snapshot(self, step: int, variables: PyTree) -> None:
        """Save variables captured after ``step`` (``snapshots/<step>``, blocking, atomic)."""
        save_tree(self._snapshot_path(step), variables)

    def restore_snapshot(self, step: int, like: PyTree) -> PyTree:
        """The variables saved by :meth:`save_snapshot` for ``step``, shaped like ``like``."""
        path = self._snapshot_path(step)
        if not path.exists():
            raise FileNotFoundError(f"{self.path} has no snapshot of step {step} ({path}); the "
                                    "workdir is incomplete: use a new workdir")
        with ocp.StandardCheckpointer() as ckpt:
            return ckpt.restore(path, jax.tree.map(ocp.utils.to_shape_dtype_struct, like))

    def _snapshot_path(self, step: int) -> Path:
        return (self.path / "snapshots" / str(int(step))).absolute()

    def write_results(self, results: Mapping[str, Any]) -> None:
        write_json_atomic(self.results_path, dict(results))

    def close(self) -> None:
        with sigint_deferred():
            self._manager.wait_until_finished()
            self._manager.close()


def restore_variables(path: str | os.PathLike) -> PyTree:
    """The model variables (``params`` + e.g. ``batch_stats``) of a run's newest checkpoint.

    Reads ``<path>/checkpoints`` as written by :func:`jaxprune.train.fit` (no template needed),
    e.g. to prune a trained network. Stacked (multi-network) runs keep their leading axis.

    Raises:
      FileNotFoundError: if ``path`` holds no checkpoint.
    """
    ckpt_dir = (Path(path) / "checkpoints").absolute()
    if not ckpt_dir.is_dir():
        raise FileNotFoundError(f"{path} holds no checkpoints/ folder: is it a jaxprune workdir?")
    with ocp.CheckpointManager(ckpt_dir) as manager:
        epoch = manager.latest_step()
        if epoch is None:
            raise FileNotFoundError(f"{path}/checkpoints holds no complete checkpoint")
        out = manager.restore(epoch, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(), history=ocp.args.JsonRestore()))
    state = out["state"]
    return {"params": state["params"], **(state.get("model_state") or {})}
