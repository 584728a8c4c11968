"""The rule "nothing outside a module touches its ``_private`` names", checked on the source.

Every ``.py`` file under jaxprune/, tests/, benchmarks/, notebooks/ and experiments/ is parsed
(``ast``, nothing is imported) and these are reported as ``file:line name``:

- ``from pkg.mod import _name``: a private name (or private submodule) of another module;
- ``import pkg._mod`` / ``from pkg._mod import name``: a private module, from outside ``pkg``;
- ``alias._name``, where ``alias`` is bound by an import of one of the project's modules (e.g.
  ``from jaxprune.studies import pai`` then ``pai._options``), also as a string
  (``monkeypatch.setattr(alias, "_name", ...)``, ``monkeypatch.setattr("pkg.mod._name", ...)``).

Dunder names are public. A private submodule may be used by the modules of its own package
(``jaxprune.data._load`` importing ``jaxprune.data._tfds``); that is what makes it private to the
package. Third-party private names (``torch.nn.init._calculate_fan_in_and_fan_out``) are not ours.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("jaxprune", "tests", "benchmarks", "notebooks", "experiments")
# Top-level import names whose modules are ours: the scanned packages, and the helper modules the
# tests import by their bare name (tests/ is on sys.path: ``from structured_helpers import ...``).
OWN_ROOTS = {"jaxprune", "benchmarks", *(p.stem for p in (ROOT / "tests").glob("*.py"))}
SETATTR_LIKE = {"setattr", "getattr", "hasattr", "delattr", "patch"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _files() -> list[Path]:
    return sorted(p for d in SCANNED for p in (ROOT / d).rglob("*.py")
                  if not any(part.startswith(".") for part in p.relative_to(ROOT).parts))


def _modules(files: list[Path]) -> set[str]:
    """Every module and package of the project by dotted name (tests' helpers by bare name)."""
    out = {_module_name(p) for p in files}
    out |= {p.stem for p in (ROOT / "tests").glob("*.py")}
    return out


def _own(module: str) -> bool:
    return module.split(".")[0] in OWN_ROOTS


def _package(module: str) -> str:
    return module.rpartition(".")[0]


def _inside(importer: str, package: str) -> bool:
    return importer == package or importer.startswith(package + ".")


def _private_module_outside(importer: str, module: str) -> str | None:
    """The first private component of ``module`` whose package ``importer`` is not in."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if _private(part) and not _inside(importer, ".".join(parts[:i])):
            return ".".join(parts[: i + 1])
    return None


class _Checker(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, modules: set[str]):
        self.module, self.modules = module, modules
        self.package = module if is_package else _package(module)
        self.aliases: dict[str, str] = {}  # local name -> the module it is bound to
        self.found: list[tuple[int, str]] = []

    def _touch(self, line: int, owner: str, name: str) -> None:
        """``owner.name`` used here: report it unless public or a submodule we may use."""
        if not _private(name) or owner == self.module:
            return
        target = f"{owner}.{name}"
        if target in self.modules and _inside(self.module, owner):
            return  # a private submodule, used inside its own package
        self.found.append((line, target))

    def _bind(self, local: str, module: str) -> None:
        if _own(module):
            self.aliases[local] = module
        else:
            self.aliases.pop(local, None)

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            if not _own(a.name):
                continue
            bad = _private_module_outside(self.module, a.name)
            if bad:
                self.found.append((node.lineno, bad))
            if a.asname:
                self._bind(a.asname, a.name)
            else:
                top = a.name.split(".")[0]
                self._bind(top, top)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        source = node.module or ""
        if node.level:  # relative: from the importer's package
            base = self.package.split(".")
            base = base[: len(base) - node.level + 1]
            source = ".".join(base + ([source] if source else []))
        if not _own(source):
            return
        bad = _private_module_outside(self.module, source)
        if bad:
            self.found.append((node.lineno, bad))
        for a in node.names:
            if a.name == "*":
                continue
            self._touch(node.lineno, source, a.name)
            full = f"{source}.{a.name}"
            if full in self.modules:
                self._bind(a.asname or a.name, full)

    def _resolve(self, node: ast.expr) -> str | None:
        """The module an expression names (``alias``, ``alias.sub``), if it is one of ours."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            owner = self._resolve(node.value)
            if owner is not None and f"{owner}.{node.attr}" in self.modules:
                return f"{owner}.{node.attr}"
        return None

    def visit_Attribute(self, node: ast.Attribute) -> None:
        owner = self._resolve(node.value)
        if owner is not None:
            self._touch(node.lineno, owner, node.attr)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        args = node.args
        if name in SETATTR_LIKE and args:
            first = args[0]
            if (len(args) > 1 and isinstance(args[1], ast.Constant)
                    and isinstance(args[1].value, str)):
                owner = self._resolve(first)
                if owner is not None:
                    self._touch(node.lineno, owner, args[1].value)
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and _own(
                    first.value):  # monkeypatch.setattr("pkg.mod._name", ...), mock.patch(...)
                owner, _, attr = first.value.rpartition(".")
                bad = _private_module_outside(self.module, owner)
                if bad:
                    self.found.append((node.lineno, bad))
                elif owner:
                    self._touch(node.lineno, owner, attr)
        self.generic_visit(node)


def find_violations() -> list[tuple[str, int, str]]:
    """``(file, line, name)`` of every use of another module's private name."""
    files = _files()
    modules = _modules(files)
    out = []
    for path in files:
        module = _module_name(path)
        if path.parent == ROOT / "tests":  # imported by bare name (tests/ is on sys.path)
            module = path.stem
        checker = _Checker(module, path.name == "__init__.py", modules)
        checker.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        rel = path.relative_to(ROOT).as_posix()
        out += [(rel, line, name) for line, name in checker.found]
    return sorted(set(out))


def test_no_module_touches_another_modules_private_names():
    bad = [f"{f}:{line} {name}" for f, line, name in find_violations()]
    assert not bad, ("private names used outside their module (make the name public, move the "
                     "code, or go through the public API):\n  " + "\n  ".join(bad))
