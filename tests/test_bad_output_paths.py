"""Bad input found by a review: outputs that cannot be written are refused before the work, a recording is never
lost to an unwritable path, and folders that give no sample say why instead of failing in numpy."""
import json

import numpy as np
import pytest

from helpers import run_cli


@pytest.fixture
def junk_folder(tmp_path):
    """A dataset folder whose only images are unreadable (random bytes, an empty file)."""
    (tmp_path / "junk" / "A").mkdir(parents=True)
    (tmp_path / "junk" / "A" / "x.jpg").write_bytes(np.random.default_rng(0).bytes(300))
    (tmp_path / "junk" / "A" / "y.png").write_bytes(b"")
    return tmp_path / "junk"


def test_an_output_path_that_is_a_folder_is_refused_before_the_work(tmp_path):
    from realtime.cli_common import writable

    with pytest.raises(SystemExit):
        writable(str(tmp_path))
    assert writable(str(tmp_path / "ok.json")) == str(tmp_path / "ok.json")
    for args in (("eval", "--data", str(tmp_path), "--json", str(tmp_path)),
                 ("live", "--no-window", "--source", str(tmp_path), "--jsonl", str(tmp_path)),
                 ("calibrate", "--model", "asl-letters", "--data", str(tmp_path), "--out", str(tmp_path))):
        r = run_cli(*args)
        assert r.returncode == 2 and "it is a folder" in r.stderr, (args, r.stderr)


def test_eval_refuses_a_plot_format_before_the_work_and_a_folder_of_unreadable_images(tmp_path, junk_folder):
    from training.evaluate import plot_path

    with pytest.raises(ValueError, match=r"\.png"):
        plot_path("cm.xyz", None, None)
    r = run_cli("eval", "--data", str(junk_folder), "--json", str(tmp_path / "e.json"), "--plot", str(tmp_path / "c.xyz"))
    assert r.returncode == 2 and "confusion matrix is written as one of" in r.stderr
    r = run_cli("eval", "--data", str(junk_folder), "--json", str(tmp_path / "e.json"))
    assert r.returncode == 2 and "none of the 2 images" in r.stderr and "x.jpg" in r.stderr
    assert not (tmp_path / "e.json").exists()
    r = run_cli("eval", "--data", str(junk_folder))  # no plot asked for: that note never precedes an error
    assert r.returncode == 2 and "none of the 2 images" in r.stderr and "no confusion matrix" not in r.stdout


def test_calibrate_from_photos_that_give_no_sample_says_why(tmp_path, junk_folder):
    (junk_folder / "ZZ").mkdir()
    (junk_folder / "ZZ" / "z.jpg").write_bytes(b"")
    r = run_cli("calibrate", "--model", "asl-letters", "--data", str(junk_folder), "--out", str(tmp_path / "p.json"))
    assert r.returncode == 2, r.stderr
    assert "no photo" in r.stderr and "ZZ" in r.stderr and "2 unreadable" in r.stderr, r.stderr
    assert not (tmp_path / "p.json").exists()


def test_a_profile_without_samples_is_not_made():
    from realtime.calibration import ProfileError, make_profile

    with pytest.raises(ProfileError, match="no samples were recorded"):
        make_profile(object(), np.zeros((0, 0)), [])


def test_a_profile_that_cannot_be_saved_leaves_no_temporary_file(tmp_path):
    from test_calibration import profile

    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError):
        profile().save(tmp_path / "taken")
    assert not list(tmp_path.glob("*.tmp"))


def test_a_profile_with_damaged_samples_is_refused(tmp_path):
    from realtime.calibration import Profile, ProfileError
    from test_calibration import profile

    d = profile().to_json()
    row = d["samples"][1]
    if isinstance(row, list):
        row[0] = None  # a value lost from the file: loads as NaN and would silently skew every reading
    else:
        d["samples"][1] = None
    (tmp_path / "p.json").write_text(json.dumps(d))
    with pytest.raises(ProfileError, match="not numbers"):
        Profile.load(tmp_path / "p.json")


def test_a_broken_manifest_row_is_named(tmp_path):
    from realtime.images import DatasetError, ImageFolder

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "manifest.csv").write_text('path,label,signer,source_split\nA/1.jpg,A,s1,train\n"A/2.jpg,A,s1,train\n')
    with pytest.raises(DatasetError, match="row 3"):
        ImageFolder(tmp_path / "d")


def test_bench_refuses_a_missing_source_before_loading_models(tmp_path):
    r = run_cli("bench", "--source", str(tmp_path / "nope.mp4"))
    assert r.returncode == 2 and "nope.mp4" in r.stderr.strip().splitlines()[-1]


def test_live_results_that_cannot_be_moved_into_place_say_where_they_are(tmp_path):
    from realtime.live import PartialFile

    target = tmp_path / "out.jsonl"
    f = PartialFile(target)
    f.write_line("{}")
    target.mkdir()  # the path became a folder while the run was going
    with pytest.raises(OSError, match="kept in"):
        f.close()
    assert f.tmp.read_text() == "{}\n"


def test_a_new_profile_keeps_the_one_it_replaces_as_bak(tmp_path, capsys):
    """calibrate --out over an existing profile replaced it without a word (with --camera, a minute of recording)."""
    from realtime.cli import _save_profile
    from test_calibration import profile

    out = str(tmp_path / "me.json")
    old = profile(model="before").save(out).read_text()
    assert _save_profile(profile(), out) == out
    assert (tmp_path / "me.json.bak").read_text() == old and json.loads((tmp_path / "me.json").read_text())["model"] \
        == "toy"
    assert f"kept as {out}.bak" in capsys.readouterr().out


def test_export_refuses_a_file_or_a_folder_of_other_files_before_the_work(tmp_path, monkeypatch, capsys):
    """--out FILE ran the whole export, then failed with Errno 17; a folder of other files got the model mixed in."""
    from export import formats
    from realtime.cli import main

    def no_work(*args, **kwargs):
        raise AssertionError("the export ran before --out was checked")

    monkeypatch.setattr(formats, "export_model_onnx", no_work)
    (tmp_path / "file").write_text("x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    for out, why in (("file", "is a file"), ("other", "holds other files and no exported model")):
        assert main(["export", "--model", "asl-letters", "--out", str(tmp_path / out)]) == 2
        assert why in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "manifest.json").write_text("{}")
    for out in ("empty", "export", "new"):  # where an export goes: run
        with pytest.raises(AssertionError, match="the export ran"):
            main(["export", "--model", "asl-letters", "--out", str(tmp_path / out)])


@pytest.mark.parametrize("samples,labels,why", [(0, 0, "holds no samples"), (4, 3, "4 samples but 3 sample labels"),
                                                (0, 2, "0 samples but 2 sample labels")])
def test_a_profile_without_samples_or_with_labels_out_of_step_is_said_damaged(tmp_path, samples, labels, why):
    """They failed in numpy's words ('cannot reshape array of size 0')."""
    from realtime.calibration import Profile, ProfileError
    from test_calibration import profile

    d = profile().to_json()
    d["samples"], d["sample_labels"] = d["samples"][:samples], (["A"] * 4)[:labels]
    (tmp_path / "p.json").write_text(json.dumps(d))
    with pytest.raises(ProfileError, match=f"p.json: .*{why}.*damaged") as e:
        Profile.load(tmp_path / "p.json")
    assert "reshape" not in str(e.value)
