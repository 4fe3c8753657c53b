"""Many cameras, one pipeline (realtime/streams.py): each stream read as it would be alone, in one batched step."""
import numpy as np
import pytest

from helpers import manifest_rows, need_dataset


def test_streams_need_a_hand_pipeline_that_batches():
    from realtime.pipeline import PipelineOptions
    from realtime.streams import MultiStreamRecognizer

    with pytest.raises(ValueError, match="--hands onnx or torch"):
        MultiStreamRecognizer(2, PipelineOptions(hands="mediapipe", device="cpu"))
    with pytest.raises(ValueError, match="at least 1"):
        MultiStreamRecognizer(0, PipelineOptions(hands="onnx", device="cpu"))


@pytest.mark.data
def test_each_stream_reads_as_it_would_alone():
    from realtime.bench import letterbox
    from realtime.images import read_image
    from realtime.pipeline import PipelineOptions, Recognizer
    from realtime.streams import MultiStreamRecognizer

    root = need_dataset("massey")
    rows = [r for r in manifest_rows(root) if r["label"] in ("A", "L", "V", "Y")][::9][:3]
    frames = [letterbox(read_image(root / r["path"]), (640, 480)) for r in rows] + [np.zeros((480, 640, 3), np.uint8)]
    multi = MultiStreamRecognizer(4, PipelineOptions(hands="onnx", device="cpu"))
    try:
        with pytest.raises(ValueError, match="3 frames for 4 streams"):
            multi.process(frames[:3])
        together = multi.process(frames, t=0.0)
    finally:
        multi.close()
    assert together[3].hand is None and together[3].letter is None  # an empty frame: no hand, nothing read
    for frame, got in zip(frames[:3], together[:3]):
        alone = Recognizer.build(hands="onnx", device="cpu", redetect_after=0)
        try:
            want = alone.process(frame, t=0.0)
        finally:
            alone.close()
        assert got.hand is not None and want.hand is not None
        assert np.abs(got.hand.landmarks - want.hand.landmarks).max() < 1e-2
        assert got.letter == want.letter and abs(got.confidence - want.confidence) < 1e-4


@pytest.mark.data
def test_live_spells_two_videos_at_once(tmp_path):
    """`live --source a.mp4,b.mp4 --hands onnx`: each video's word, and JSON lines that say which stream."""
    import json

    from helpers import run_cli, write_spelling_video
    from realtime.images import read_image

    root = need_dataset("massey")
    photo = {r["label"]: root / r["path"] for r in manifest_rows(root) if r["signer"] == "hand1"}
    for name, word in (("a.mp4", "LA"), ("b.mp4", "YA")):
        write_spelling_video(tmp_path / name, [read_image(photo[c]) for c in word])
    r = run_cli("live", "--source", f"{tmp_path / 'a.mp4'},{tmp_path / 'b.mp4'}", "--hands", "onnx",
                "--device", "cpu", "--no-window", "--jsonl", str(tmp_path / "out.jsonl"))
    code, out, err = r.returncode, r.stdout, r.stderr
    assert code == 0, err
    texts = dict(line.split(": ", 1) for line in out.strip().splitlines() if line[:1].isdigit())
    assert texts["0"].strip() == "LA" and texts["1"].strip() == "YA"
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert {x["stream"] for x in lines} == {0, 1} and "2 streams" in err
