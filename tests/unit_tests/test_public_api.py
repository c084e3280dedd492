"""The package's shape, read from its source: one importable name, a public API that is exactly `__all__`, a plug-in
core that never imports training, and the training commands as installed entry points."""

import ast
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import langchain_smartrag

PACKAGE = Path(langchain_smartrag.__file__).parent
CORE = [
    "protocol",
    "policy",
    "graph",
    "scoring",
    "batching",
    "cache",
    "jsonl",
    "server",
    "chat_model",
    "retrievers",
    "cli",
    "_cli",
]
"""The plug-in: what `graph.invoke` and `smartrag ask` need. It, like every module outside training/, must never
reach into training."""
IMPORTERS = {"import_module", "__import__", "find_spec", "import_from_path", "spec_from_file_location", "run_module"}
"""Calls that import a module named by a string."""


def test_all_names_exactly_the_public_api():
    """The names load on first use (PEP 562), so `dir()` lists them before that; once all are loaded the module
    holds no other public name."""
    assert set(langchain_smartrag.__all__) <= set(dir(langchain_smartrag))
    for name in langchain_smartrag.__all__:
        getattr(langchain_smartrag, name)
    public = {
        name
        for name, value in vars(langchain_smartrag).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }  # submodules are not API
    assert set(langchain_smartrag.__all__) == public
    with pytest.raises(AttributeError, match="has no attribute 'SmartRAG'"):
        langchain_smartrag.SmartRAG  # noqa: B018 -- a name that is not API fails as on any module
    assert re.fullmatch(r"\d+\.\d+\.\d+", langchain_smartrag.__version__)
    assert (Path(langchain_smartrag.__file__).parent / "py.typed").exists()


def test_each_public_name_loads_from_the_module_type_checkers_see():
    """The lazy table (`_SOURCES`) and the `TYPE_CHECKING` imports that mypy and IDEs read name the same modules."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    # `if _typing.TYPE_CHECKING:` (not the `if not ...:` that hides `__getattr__` from type checkers)
    (block,) = [node for node in tree.body if isinstance(node, ast.If) and isinstance(node.test, ast.Attribute)]
    seen = {alias.name: "." * node.level + (node.module or "") for node in block.body for alias in node.names}
    assert seen == langchain_smartrag._SOURCES
    assert sorted(seen) == sorted(langchain_smartrag.__all__)


def test_importing_the_package_loads_neither_torch_nor_transformers():
    """`import langchain_smartrag` stays cheap: torch and transformers load when a policy or graph is first named."""
    code = "import langchain_smartrag, sys; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr


def plugin_files() -> list[Path]:
    """Every module of the package outside its training subpackage."""
    return sorted(p for p in PACKAGE.rglob("*.py") if "training" not in p.relative_to(PACKAGE).parts)


def imported_names(tree: ast.AST) -> list[str]:
    """What a module imports: `import` and `from` statements, and the strings passed to `importlib` and its kin."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names += [f"{'.' * node.level}{node.module or ''}", *(a.name for a in node.names)]
        elif isinstance(node, ast.Call):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if called in IMPORTERS:
                names += [
                    n.value
                    for a in [*node.args, *(k.value for k in node.keywords)]
                    for n in ast.walk(a)
                    if isinstance(n, ast.Constant) and isinstance(n.value, str)
                ]
    return names


def test_the_core_list_names_modules_of_the_plugin():
    files = set(plugin_files())
    for name in CORE:
        assert PACKAGE / f"{name}.py" in files or PACKAGE / name / "__init__.py" in files, name


def test_no_module_outside_training_imports_training():
    files = plugin_files()
    assert PACKAGE / "cli.py" in files and PACKAGE / "retrievers" / "bm25.py" in files
    assert not any("training" in str(p.relative_to(PACKAGE)) for p in files)
    for path in files:
        names = imported_names(ast.parse(path.read_text()))
        assert not any("training" in n for n in names), f"{path.relative_to(PACKAGE)} imports {names}"


def test_the_import_check_sees_every_way_to_import():
    tree = ast.parse(
        "import langchain_smartrag.training\nfrom . import training\nfrom .training.cli import main\n"
        "importlib.import_module('langchain_smartrag.training.cli')\n__import__('x.training')\n"
        "import_module(name='y', package='.training')"
    )
    assert [n for n in imported_names(tree) if "training" in n] == [
        "langchain_smartrag.training",
        "training",
        ".training.cli",
        "langchain_smartrag.training.cli",
        "x.training",
        ".training",
    ]


def test_the_training_commands_are_installed_entry_points():
    """`smartrag eval` and `smartrag train` come from pyproject's entry points; stale metadata (an editable install
    from before they were added, or an old `langchain_smartrag.egg-info` in the working directory) lacks them."""
    from langchain_smartrag.cli import plugin_commands, summary

    commands = plugin_commands()
    assert {"eval", "train"} <= set(commands), "reinstall: pip install -e . (and delete a stale *.egg-info here)"
    assert all(commands[name].module == "langchain_smartrag.training.cli" for name in ("eval", "train"))
    assert summary(commands["train"]).startswith("build warm-up data, run SFT, run PPO")


def module_imports(path: Path) -> set[str]:
    """The package modules a module imports when it is loaded (top-level statements; a function's imports and
    `TYPE_CHECKING` blocks run later or never), as dotted names."""
    name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], *filter(None, [base])]
                )
            found |= {f"{base}.{a.name}" for a in node.names} | {base}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def test_no_two_modules_import_each_other_even_through_others():
    modules = {
        ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in PACKAGE.rglob("*.py")
    }
    imports = {name: module_imports(path) & set(modules) - {name} for name, path in modules.items()}
    for start in modules:  # depth-first from each module: reaching it again is a cycle
        stack, seen = [(start, [start])], set()
        while stack:
            name, path = stack.pop()
            for nxt in imports[name]:
                assert nxt != start, " -> ".join([*path, nxt])
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
