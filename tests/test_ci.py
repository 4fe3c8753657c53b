"""CI runs the README's own test command, on a fresh empty cache; a wrong datasets path is named, not mistaken
for a missing one."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command_with_an_empty_cache():
    readme = (ROOT / "README.md").read_text()
    command = next(l for l in readme.splitlines() if "python -m pytest -q tests" in l and l.startswith("pip install"))
    script = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert script[-1] == command
    fresh = next(i for i, l in enumerate(script) if re.fullmatch(r'FINGERSPELL_CACHE="\$\(mktemp -d\)"', l))
    assert "export FINGERSPELL_CACHE" in script[fresh:]  # the tests (and their subprocesses) see it


def test_a_datasets_path_that_does_not_exist_is_named(monkeypatch, tmp_path):
    from helpers import need_dataset

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINGERSPELL_DATASETS", "../shared/datasets-nowhere")
    with pytest.raises(pytest.skip.Exception, match="datasets-nowhere does not exist"):
        need_dataset("lis")
    from export.real_inputs import NoData, datasets_root

    with pytest.raises(NoData, match="datasets-nowhere does not exist"):
        datasets_root()
    monkeypatch.delenv("FINGERSPELL_DATASETS")
    with pytest.raises(pytest.skip.Exception, match="set FINGERSPELL_DATASETS"):
        need_dataset("lis")


def test_export_and_the_demo_give_no_deprecation_warning_left_unexplained(tmp_path):
    """Deprecation warnings are errors here, except those pyproject's pytest config filters with a reason."""
    import warnings

    tomllib = pytest.importorskip("tomllib")
    torch = pytest.importorskip("torch")
    pytest.importorskip("gradio")
    from _pytest.config import parse_warning_filter

    from export.keypoint_export import export_keypoint_model
    from realtime.demo import build_app
    from realtime.features import FeatureSpec
    from training.keypoint_model import KeypointClassifier

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    spec, labels = FeatureSpec(), list("ABC")
    model = KeypointClassifier(spec.dim, len(labels), (16, 8)).eval()
    torch.save({"config": model.config(), "state_dict": model.state_dict(), "labels": labels,
                "features": spec.to_dict()}, tmp_path / "model.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for f in config["filterwarnings"]:
            warnings.filterwarnings(*parse_warning_filter(f, escape=False))
        export_keypoint_model(tmp_path / "model.pt", tmp_path / "out")
        build_app()
