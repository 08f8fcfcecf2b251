"""The architecture's rules, read from the source (DESIGN.md, "Architecture rules"):

* a stage core never imports the shell, the supervisor, zmq, or the ring, shared-memory
  and doorbell modules: it is transport-agnostic;
* no import circle inside ``daemon/``;
* no class in ``daemon/`` over 300 lines;
* the tick's path (the files ``daemon/__init__.py`` lists) is one shell file and one core
  per stage, and each core reaches (transitively) only its own package and the shared
  leaves (``daemon/jit.py``, ``daemon/config_base.py``);
* no function on the tick's path takes more than 10 parameters.

Each rule is a function over a source tree, so the tests also run it on a small tree
that breaks it and check that it says so.
"""
from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STAGE_PACKAGES = ("feed", "features", "infer", "risk", "router")
FORBIDDEN = ("alphad.daemon.shell", "alphad.daemon.supervisor", "zmq", "alphad.ipc.ring", "alphad.ipc.shm",
             "alphad.ipc.doorbell")
MAX_CLASS_LINES = 300
MAX_PARAMS = 10


def module_name(root: Path, path: Path) -> str:
    """``daemon/risk/core.py`` -> ``alphad.daemon.risk.core`` (a package's ``__init__`` -> the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["alphad", *parts])


def imports_of(root: Path, path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, anywhere in the file, with its line (relative imports resolved)."""
    here = module_name(root, path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names]  # `from pkg import module`
    return found


def forbidden_imports(root: Path) -> list[str]:
    """``file:line imports X`` for each import a stage package must not make."""
    bad = []
    for pkg in STAGE_PACKAGES:
        for path in sorted((root / "daemon" / pkg).rglob("*.py")):
            for line, name in imports_of(root, path):
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                    bad.append(f"{path.relative_to(root)}:{line} imports {name}")
    return sorted(set(bad))


def import_cycles(root: Path) -> list[list[str]]:
    """The import circles among ``daemon/``'s modules (each once, as a path)."""
    modules = {module_name(root, p): p for p in (root / "daemon").rglob("*.py")}
    graph = {}
    for mod, path in modules.items():
        targets = {name for _, name in imports_of(root, path)}
        graph[mod] = sorted(t for t in targets if t in modules and t != mod and not mod.startswith(t + "."))
    cycles, state, stack = [], {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in graph[m]:
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return cycles


def long_classes(root: Path) -> list[str]:
    out = []
    for path in sorted((root / "daemon").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_CLASS_LINES:
                    out.append(f"{path.relative_to(root)}:{node.lineno} class {node.name} has {n} lines")
    return out


def tick_path_files(root: Path) -> list[str]:
    """The files ``daemon/__init__.py``'s map names, in order (lines ``N. daemon/...py``)."""
    doc = ast.get_docstring(ast.parse((root / "daemon" / "__init__.py").read_text())) or ""
    return re.findall(r"^\s*\d+\.\s+`?(daemon/[\w/]+\.py)", doc, flags=re.M)


SHARED_LEAVES = ("alphad.daemon.jit", "alphad.daemon.config_base")


def path_shape_errors(files: list[str]) -> list[str]:
    """What keeps ``files`` from being the shell's one file and one core per stage."""
    errors = []
    shell = [f for f in files if f.startswith("daemon/shell/")]
    if len(shell) != 1:
        errors.append(f"expected one shell file on the tick's path, found {shell}")
    cores = sorted(f for f in files if f not in shell)
    if cores != sorted(f"daemon/{p}/core.py" for p in STAGE_PACKAGES):
        errors.append(f"expected one core per stage {STAGE_PACKAGES}, found {cores}")
    return errors


def foreign_reach(root: Path, core: str) -> list[str]:
    """The ``daemon/`` modules outside ``core``'s own package that it imports, transitively."""
    modules = {module_name(root, p): p for p in (root / "daemon").rglob("*.py")}
    start = module_name(root, root / core)
    own = start.rsplit(".", 1)[0]
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += [name for _, name in imports_of(root, modules[m]) if name in modules]
    return sorted(m for m in seen if not m.startswith(own + ".") and m != own and m not in SHARED_LEAVES
                  and m != "alphad.daemon")


def wide_functions(root: Path, files: list[str]) -> list[str]:
    out = []
    for rel in files:
        for node in ast.walk(ast.parse((root / rel).read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                n = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) + bool(a.vararg) + bool(a.kwarg)
                n -= bool(a.args) and a.args[0].arg in ("self", "cls")
                if n > MAX_PARAMS:
                    out.append(f"{rel}:{node.lineno} {node.name} takes {n} parameters")
    return out


# -- the repository keeps the rules ----------------------------------------------------

def test_stage_packages_when_read_then_import_no_transport_shell_or_supervisor():
    assert forbidden_imports(REPO) == []


def test_daemon_when_read_then_no_import_circle():
    assert import_cycles(REPO) == []


def test_daemon_when_read_then_no_class_over_300_lines():
    assert long_classes(REPO) == []


def test_tick_path_when_listed_then_each_function_takes_at_most_10_parameters():
    files = tick_path_files(REPO)
    assert files, "daemon/__init__.py lists the tick's path as numbered `daemon/...py` lines"
    assert all((REPO / f).exists() for f in files), files
    assert wide_functions(REPO, files) == []


def test_tick_path_when_listed_then_one_shell_file_and_one_core_per_stage_each_reaching_only_its_package():
    files = tick_path_files(REPO)
    assert len(files) <= 6 and path_shape_errors(files) == [], files
    for core in files[1:]:
        assert foreign_reach(REPO, core) == [], core


# -- each rule fails when broken --------------------------------------------------------

@pytest.fixture
def tree(tmp_path):
    def write(rel, text):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))

    for pkg in ("daemon", *(f"daemon/{p}" for p in STAGE_PACKAGES), "daemon/shell"):
        write(f"{pkg}/__init__.py", "")
    return tmp_path, write


def test_forbidden_imports_when_a_core_imports_the_ring_or_the_shell_then_named(tree):
    root, write = tree
    write("daemon/risk/core.py", "from alphad.ipc.ring import ring_push\nimport numpy\n")
    write("daemon/router/core.py", "def f():\n    from ..shell import compiled\n")
    write("daemon/feed/core.py", "from alphad.ipc import dtypes\n")
    assert forbidden_imports(root) == ["daemon/risk/core.py:1 imports alphad.ipc.ring",
                                       "daemon/risk/core.py:1 imports alphad.ipc.ring.ring_push",
                                       "daemon/router/core.py:2 imports alphad.daemon.shell",
                                       "daemon/router/core.py:2 imports alphad.daemon.shell.compiled"]


def test_import_cycles_when_two_modules_import_each_other_then_found(tree):
    root, write = tree
    write("daemon/infer/core.py", "from alphad.daemon.shell import compiled\n")
    write("daemon/shell/compiled.py", "from alphad.daemon.infer.core import x\n")
    assert import_cycles(root) == [["alphad.daemon.infer.core", "alphad.daemon.shell.compiled",
                                    "alphad.daemon.infer.core"]]


def test_long_classes_and_wide_functions_when_over_the_limits_then_named(tree):
    root, write = tree
    write("daemon/shell/runner.py", "class Big:\n" + "    x = 1\n" * 300 + "\n\ndef step(self, " +
          ", ".join(f"a{i}" for i in range(11)) + "):\n    pass\n")
    write("daemon/__init__.py", '"""Map.\n\n1. daemon/shell/runner.py\n"""\n')
    assert long_classes(root) == ["daemon/shell/runner.py:1 class Big has 301 lines"]
    assert tick_path_files(root) == ["daemon/shell/runner.py"]
    assert wide_functions(root, ["daemon/shell/runner.py"]) == ["daemon/shell/runner.py:304 step takes 11 parameters"]


def test_path_shape_and_foreign_reach_when_a_second_shell_file_or_a_core_reaching_out_then_named(tree):
    root, write = tree
    for p in STAGE_PACKAGES:
        write(f"daemon/{p}/core.py", "from alphad.daemon.jit import x\n")
    write("daemon/jit.py", "")
    write("daemon/risk/core.py", "from alphad.daemon.risk import checks\n")
    write("daemon/risk/checks.py", "from alphad.daemon.router.order_fsm import y\n")  # reached through its own package
    write("daemon/router/order_fsm.py", "")
    files = ["daemon/shell/tick.py", "daemon/shell/stages.py"] + [f"daemon/{p}/core.py" for p in STAGE_PACKAGES]
    assert path_shape_errors(files) == ["expected one shell file on the tick's path, found "
                                        "['daemon/shell/tick.py', 'daemon/shell/stages.py']"]
    assert path_shape_errors(files[:1] + files[2:]) == []
    assert foreign_reach(root, "daemon/risk/core.py") == ["alphad.daemon.router.order_fsm"]
    assert foreign_reach(root, "daemon/feed/core.py") == []
