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
