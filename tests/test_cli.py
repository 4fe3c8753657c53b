"""Every subcommand's --help explains every option."""
import pytest

from realtime.cli import build_parser

COMMANDS = [["live"], ["eval"], ["bench"], ["models"], ["demo"], ["export"], ["train", "keypoints"],
            ["train", "results"], ["train", "extract"], ["train", "j2s"], ["train", "j2s-grid"], ["train", "j2s-results"]]


def subparser(parser, path):
    for name in path:
        action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_option_has_help(path):
    p = subparser(build_parser(), path)
    for action in p._actions:
        if action.option_strings and action.dest != "help":
            assert action.help and len(action.help) > 10, f"{' '.join(path)} {action.option_strings} lacks help"


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["live", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--source" in out and "--jsonl" in out and "--hold" in out


def test_models_lists_the_shipped_models(capsys):
    from realtime.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "asl-letters" in out and "lis-letters" in out
    assert "lis-letters-image" in out and "--classifier image" in out
    assert "lis-reacgan-cpu" not in out and "mediapipe-hands" not in out  # not letter models


def test_models_show_the_readmes_accuracy_for_every_model(capsys):
    """One definition for every model: all images of held-out people, the figure of the README's table."""
    import re
    from pathlib import Path

    from realtime.cli import main

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([\w-]+)` \|[^|]*\|[^|]*\| ([\d.]+%)", readme, re.M)}
    assert main(["models"]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.split() and l.split()[0] in table]
    assert len(lines) == len(table) == 4
    for line in lines:
        assert f"accuracy {table[line.split()[0]]} of all " in line, line


def test_eval_plot_goes_where_asked_never_unasked_into_the_current_folder():
    from pathlib import Path

    from training.evaluate import plot_path

    assert plot_path(None, None, "runs/e.json") == Path("runs/e-confusion.png")
    assert plot_path(None, "plots", "runs/e.json") == Path("plots/confusion_matrix.png")
    assert plot_path("cm.png", "plots", "runs/e.json") == Path("cm.png")
    assert plot_path(None, None, None) is None


def test_unreadable_files_are_named_with_correct_grammar():
    from training.evaluate import unreadable_note

    assert unreadable_note(["A/x.jpg"]) == "skipped 1 unreadable image: A/x.jpg"
    assert unreadable_note(["a", "b", "c", "d", "e"]) == "skipped 5 unreadable images: a, b, c and 2 more"


WITHOUT_TRAIN_EXTRA = ("import sys\nfor m in ('torch', 'torchvision', 'onnx'):\n    sys.modules[m] = None  # as a [cpu] "
                       "install has them\nfrom realtime.cli import main\nsys.exit(main(sys.argv[1:]))")


@pytest.mark.parametrize("argv", [["export", "--model", "asl-letters", "--out", "OUT"],
                                  ["bench", "--backends", "all", "--model", "asl-letters", "--frames", "1"],
                                  ["train", "keypoints", "--preset", "asl-letters", "--out", "OUT"]], ids=" ".join)
def test_commands_that_need_the_train_extra_say_so_on_a_runtime_only_install(argv, tmp_path):
    """They ended in ModuleNotFoundError tracebacks where --backend torch already said what to install."""
    import subprocess
    import sys

    if argv[0] == "bench":  # without the datasets it measures no accuracy, and needs no PyTorch
        from helpers import need_dataset

        need_dataset("massey")
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    r = subprocess.run([sys.executable, "-c", WITHOUT_TRAIN_EXTRA, *argv], capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].endswith("needs PyTorch: pip install -e '.[train]'") or \
        "needs the onnx package: pip install -e '.[train]'" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_models_list_the_sequence_models_apart_and_a_wrong_name_names_them(capsys, tmp_path):
    """The only valid --sequence-model names were listed nowhere: not by 'models', not by the error for a wrong one."""
    import cv2
    import numpy as np

    from realtime.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    letters, _, sequence = out.partition("sequence models, for --reader sequence")
    assert "asl-sequence" not in letters and "lis-sequence" not in letters
    lines = {l.split()[0]: l for l in sequence.splitlines()[1:] if l.strip()}
    assert set(lines) == {"asl-sequence", "lis-sequence"} and "accuracy" not in lines["asl-sequence"]
    assert "26 letters" in lines["asl-sequence"] and "63 frames" in lines["asl-sequence"]
    cv2.imwrite(str(tmp_path / "0.png"), np.zeros((48, 64, 3), np.uint8))  # a source that opens: the model is next
    assert main(["live", "--no-window", "--source", str(tmp_path), "--reader", "sequence", "--sequence-model",
                 "nosuch"]) == 2
    assert "for --reader sequence: asl-sequence, lis-sequence" in capsys.readouterr().err
