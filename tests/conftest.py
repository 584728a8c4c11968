"""Shared test configuration: strict JAX numerics, the location of real data, a compilation cache
that lives as long as one run of the suite, and the suite's time budget.

How the suite runs (see README "Development"): ``python -m pytest -q`` spreads the tests over the
machine's cores with pytest-xdist (``-n auto`` in ``pyproject.toml``), prints the 15 slowest, and
fails a whole-suite run that takes longer than ``SUITE_BUDGET_S``. ``-n 0`` runs in one process.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

# XLA:CPU compiles the suite's programs at LLVM optimization level 1 instead of its default:
# their compile time is most of the suite's and their run time almost none of it. Level 1 is
# the same XLA program (the same HLO passes; LLVM leaves floating point alone without fast
# math): initializations and dense nets give bitwise the same values, convolutions differ in
# the last bits, and no test compares with values from another level. It is set here, before
# jax starts its backend, so the xdist workers and every subprocess (CLI, notebooks,
# benchmarks) inherit it. Measured in docs/architecture.md ("Tests"); a level given in
# XLA_FLAGS already wins (XLA_FLAGS=--xla_backend_optimization_level=3 runs the suite as users
# compile).
TEST_XLA_FLAGS = "--xla_backend_optimization_level=1"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

REPO_ROOT = Path(__file__).resolve().parents[1]

# The whole suite's wall-time budget, in seconds, for `python -m pytest -q` on the 2-core
# development machine (this is the one place it is written): about twice the measured figure
# (docs/architecture.md, "Tests": 500-595 s on 2026-12-08), so noise and a slower machine pass
# and a doubling fails.
SUITE_BUDGET_S = 1000

# JAX's persistent compilation cache, shared by the xdist workers and every subprocess the tests
# start (CLI, notebooks, benchmarks) through the environment, in a folder made for this run and
# removed after it; every program is kept (the CLI tests rerun the same training in new processes).
_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
_CACHE_SETTINGS = {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}


_START = pytest.StashKey[float]()
_CACHE_DIR = pytest.StashKey[str]()
_TOOK = pytest.StashKey[float]()


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")
_COMPILE = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--compile-report", type=int, metavar="N", default=0,
                     help="jaxprune: with -n 0, print the seconds spent tracing, lowering and "
                     "compiling XLA programs, and the N tests that spend the most")


def _start_compile_report(config: pytest.Config) -> None:
    """Sum jax's compile events per test (``--compile-report N``; one process)."""
    report = config.stash[_COMPILE] = {"test": None, "seconds": {}, "programs": {}}

    def listener(event: str, duration: float, **_) -> None:
        if event in _COMPILE_EVENTS:
            t = report["test"]
            report["seconds"][t] = report["seconds"].get(t, 0.0) + duration
            if event == _COMPILE_EVENTS[-1]:
                report["programs"][t] = report["programs"].get(t, 0) + 1

    jax.monitoring.register_event_duration_secs_listener(listener)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    if _COMPILE in item.config.stash:
        item.config.stash[_COMPILE]["test"] = item.nodeid
    yield


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "compiles: counts XLA compilations, so runs with the persistent compilation "
        "cache switched off (a program loaded from the cache is not compiled)")
    if not _is_xdist_worker(config):  # the controller (or the only process) owns the folder
        config.stash[_START] = time.monotonic()
        run_dir = config.stash[_CACHE_DIR] = tempfile.mkdtemp(prefix="jaxprune-test-caches-")
        os.environ[_CACHE_ENV] = os.path.join(run_dir, "xla")
        # Generated datasets (MNIST-1D) are kept for the run too, never in the user's
        # ~/.cache: the first process to generate one writes it, the others read it.
        os.environ["JAXPRUNE_CACHE_DIR"] = os.path.join(run_dir, "data")
        os.environ.update(_CACHE_SETTINGS)
    if config.getoption("compile_report"):
        if getattr(config.option, "numprocesses", None):
            raise pytest.UsageError("--compile-report counts one process: add -n 0")
        _start_compile_report(config)
    # Workers inherit the environment, but jax read it when this file imported jax (before the
    # controller set it), so the options are set here as well.
    jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE_ENV])
    jax.config.update("jax_persistent_cache_min_compile_time_secs",
                      float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))


def pytest_unconfigure(config: pytest.Config) -> None:
    if _CACHE_DIR in config.stash:
        shutil.rmtree(config.stash[_CACHE_DIR], ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_persistent_cache_when_counting_compiles(request):
    """Tests marked ``compiles`` see every program compiled, as in a process without the cache."""
    if request.node.get_closest_marker("compiles") is None:
        yield
        return
    from jax.experimental.compilation_cache import compilation_cache

    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()  # jax decides once per process whether the cache is used
    try:
        yield
    finally:
        jax.config.update("jax_enable_compilation_cache", True)
        compilation_cache.reset_cache()


def _is_whole_suite(config: pytest.Config) -> bool:
    """The README's command: the configured testpaths, nothing selected or deselected."""
    return (config.args_source == pytest.Config.ArgsSource.TESTPATHS
            and not config.option.keyword and not config.option.markexpr
            and not getattr(config.option, "lf", False))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A whole-suite run over ``SUITE_BUDGET_S`` fails (its summary line says why)."""
    config = session.config
    if _START not in config.stash or not _is_whole_suite(config):
        return
    config.stash[_TOOK] = took = time.monotonic() - config.stash[_START]
    if took > SUITE_BUDGET_S and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    if _COMPILE in config.stash:
        report, wall = config.stash[_COMPILE], time.monotonic() - config.stash[_START]
        seconds, programs = report["seconds"], report["programs"]
        terminalreporter.write_line(
            f"compile report: {sum(seconds.values()):.1f} s of {wall:.1f} s tracing, lowering and "
            f"compiling {sum(programs.values())} XLA programs (this process only)")
        top = sorted(seconds, key=seconds.get, reverse=True)[:config.getoption("compile_report")]
        for t in top:
            terminalreporter.write_line(f"{seconds[t]:8.1f} s {programs.get(t, 0):5d} programs {t}")
    if _TOOK not in config.stash:
        return
    took = config.stash[_TOOK]
    if took <= SUITE_BUDGET_S:
        terminalreporter.write_line(f"suite wall time {took:.1f} s, within its budget of "
                                    f"{SUITE_BUDGET_S} s (tests/conftest.py)")
    else:
        terminalreporter.write_line(
            f"FAILED: the suite took {took:.1f} s, over its budget of {SUITE_BUDGET_S} s "
            "(SUITE_BUDGET_S in tests/conftest.py): make the slowest tests above cheaper, or "
            "raise the budget there with the reason", red=True)


@pytest.fixture(scope="session")
def build_once(tmp_path_factory):
    """``build_once(name, build) -> folder``: ``build(folder)`` runs once in this run, in whichever
    process asks first; the other xdist workers wait for it and get the same folder (read it,
    don't change what another test reads)."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the workers' base folders share this parent

    def get(name: str, build) -> Path:
        folder = root / f"built-once-{name}"
        with FileLock(f"{folder}.lock"):
            if not (folder / ".built").exists():
                shutil.rmtree(folder, ignore_errors=True)  # a build that failed half-way
                folder.mkdir()
                build(folder)
                (folder / ".built").touch()
        return folder

    return get


def _shared_data_dir() -> Path | None:
    env = os.environ.get("JAXPRUNE_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real datasets (``$JAXPRUNE_DATA_DIR`` or ``../shared/data``); skips if absent."""
    d = _shared_data_dir()
    if d is None:
        pytest.skip("real data not found: set JAXPRUNE_DATA_DIR or place it in ../shared/data")
    return d
