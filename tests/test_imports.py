"""Import structure (issue 15): no import loop among the project's modules, and the runtime stands on its own
floor: in ``realtime/`` only the front door (the CLI) and the benchmarks import ``export/``, and only the CLI and
the torch rebuild import ``training/``. Imports inside functions count as much as those at the top."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("realtime", "training", "export")


def project_modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for f in (ROOT / package).rglob("*.py"):
            parts = f.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


MODULES = project_modules()


def imports_of(module: str) -> set[str]:
    """Every project module ``module`` imports (a ``from package import name`` counts the submodule ``name``)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m in MODULES and m != module}


def import_loops() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), i.e. every import loop."""
    graph = {m: imports_of(m) for m in MODULES}
    index, low, stack, on_stack, loops = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                loops.append(sorted(group))

    for m in sorted(graph):
        if m not in index:
            visit(m)
    return loops


def test_the_walker_sees_the_imports_it_must():
    """The checks below are only as good as the walk: it must see top-level, in-function and package imports."""
    assert "realtime.manifest" in imports_of("realtime.backends.base")
    assert "realtime.torch_from_onnx" in imports_of("realtime.backends.pytorch")  # inside a method
    assert "realtime.backends.tensorrt" in imports_of("realtime.backends")  # a package's __init__
    assert "training.keypoint_model" in imports_of("realtime.torch_from_onnx")


def test_no_import_loops():
    assert import_loops() == []


def test_the_runtime_does_not_import_export_or_training():
    allowed_export = {"realtime.cli", "realtime.bench", "realtime.bench_backends"}
    allowed_training = {"realtime.cli", "realtime.torch_from_onnx"}
    wrong = []
    for m in sorted(m for m in MODULES if m.split(".")[0] == "realtime"):
        up = imports_of(m)
        wrong += [(m, u) for u in up if u.startswith("export") and m not in allowed_export]
        wrong += [(m, u) for u in up if u.startswith("training") and m not in allowed_training]
    assert wrong == []


def test_the_model_contract_is_the_ground_floor():
    assert imports_of("realtime.manifest") <= {"realtime.features"}
    assert not any(m.startswith("realtime.backends") for m in imports_of("realtime.manifest"))


def test_training_helpers_are_public_in_one_module():
    """Atomic saves and the recorded command line live in training/io.py, not as private helpers imported across files."""
    import re

    for f in list((ROOT / "training").rglob("*.py")) + list((ROOT / "realtime").rglob("*.py")):
        text = f.read_text()
        assert not re.search(r"import .*\b_(atomic_torch_save|atomic_savez|command_line)\b", text), f


def test_training_commands_use_the_public_cli_helpers_not_the_cli():
    """Every training command is registered from beside its training code; the CLI only calls register()."""
    for module in ("training.commands", "training.classifier_commands", "training.gan.commands"):
        assert "realtime.cli" not in imports_of(module), module
        assert "realtime.cli_common" in imports_of(module), module
    cli = ast.parse(MODULES["realtime.cli"].read_text())
    assert not [f.name for f in cli.body if isinstance(f, ast.FunctionDef) and f.name.startswith("cmd_train")]
    assert "training.gan.commands" not in imports_of("training.classifier_commands")
