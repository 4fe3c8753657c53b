"""Import structure: the loops that once tied the model contract, the backends, the keypoint cache and the GAN code
together must not come back (issue 15 lists the rest still to untie)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports_of(module: str) -> set[str]:
    """Every project module ``module`` imports, at the top or inside a function."""
    tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.split(".")[0] in ("realtime", "training", "export")}


def test_the_model_contract_is_the_ground_floor():
    assert imports_of("realtime.manifest") <= {"realtime.features"}
    assert "realtime.classifier" not in imports_of("realtime.backends")


def test_no_loops_between_the_keypoint_cache_and_the_landmark_sets_or_in_the_gan_code():
    assert "training.keypoints" not in imports_of("training.landmark_sets")
    assert "training.keypoints" not in imports_of("training.keypoint_set")
    assert "training.gan.trainer" not in imports_of("training.gan.sampling")
    assert "training.gan.trainer" not in imports_of("training.gan.models")


def test_training_helpers_are_public_in_one_module():
    """Atomic saves and the recorded command line live in training/io.py, not as private helpers imported across files."""
    import re

    for f in list((ROOT / "training").rglob("*.py")) + list((ROOT / "realtime").glob("*.py")):
        text = f.read_text()
        assert not re.search(r"import .*\b_(atomic_torch_save|atomic_savez|command_line)\b", text), f


def test_training_commands_use_the_public_cli_helpers_not_the_cli():
    for module in ("training.classifier_commands", "training.gan.commands"):
        assert "realtime.cli" not in imports_of(module), module
    assert "training.gan.commands" not in imports_of("training.classifier_commands")
