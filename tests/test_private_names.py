"""No module imports another module's private names, read from the source with `ast` (as
tests/test_imports.py reads the layers): a name with a leading underscore is used only in the module
that defines it, and a module with a leading underscore only inside its own package. A name another
module needs gets a public name in the module that owns it.

Every import counts, including those inside functions and under `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .test_imports import PACKAGES, _modules


def _private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def _private_module_owner(module: str) -> str | None:
    """The package a private module belongs to (`attention_zoo` for `attention_zoo._common`), None
    when no part of the dotted name is private."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if _private(part):
            return ".".join(parts[:i])
    return None


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def private_imports(name: str, path: Path, modules: dict[str, Path]) -> list[str]:
    """The imports of module `name` (file `path`) that take another module's private name, or a private
    module from outside its package: one line each, `module:line imports what`."""
    is_package = path.name == "__init__.py"
    project = {module.split(".")[0] for module in modules}
    found = []

    def module_rule(target: str, line: int) -> None:
        owner = _private_module_owner(target)
        if owner is not None and target in modules and not _inside(name, owner):
            found.append(f"{name}:{line} imports {target}, private to {owner}")

    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                module_rule(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = name.split(".")
                base = parts[: len(parts) - node.level + (1 if is_package else 0)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            if source.split(".")[0] not in project:
                continue  # another project's private names are its own business (torch.utils._pytree)
            module_rule(source, node.lineno)
            for alias in node.names:
                target = f"{source}.{alias.name}"
                if target in modules:  # a submodule: the module rule
                    module_rule(target, node.lineno)
                elif _private(alias.name) and source != name:
                    found.append(f"{name}:{node.lineno} imports {alias.name} from {source}")
    return found


def test_the_checker_finds_private_names_and_private_modules(tmp_path):
    modules = {"pkg": tmp_path / "pkg/__init__.py", "pkg.a": tmp_path / "a.py", "pkg._b": tmp_path / "_b.py"}
    modules["other"] = tmp_path / "other.py"
    source = tmp_path / "probe.py"
    source.write_text("from pkg.a import _hidden, shown\nfrom pkg import _b\nimport pkg._b\n")
    assert private_imports("other", source, modules) == [
        "other:1 imports _hidden from pkg.a",
        "other:2 imports pkg._b, private to pkg",
        "other:3 imports pkg._b, private to pkg",
    ]
    source.write_text("from . import _b\nfrom ._b import thing\n")
    assert private_imports("pkg.a", source, modules) == []  # inside its package


def test_no_module_imports_another_modules_private_names():
    # the four packages and the checkout's entry, cli.py
    modules = {name: path for name, path in _modules().items() if name.split(".")[0] in (*PACKAGES, "cli")}
    found = [line for name, path in sorted(modules.items()) for line in private_imports(name, path, modules)]
    assert found == []
