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


def test_sequence_readers_of_several_streams_step_together_as_each_would_alone():
    """One run of the streaming step for all streams (each its own state, text and missed-hand count) reads every
    stream as its own reader would, frame by frame; a stream that resets starts again on its own."""
    from realtime.features import FeatureSpec
    from realtime.sequence_reader import SequenceReader, step_streams
    from training.stitching import LetterDictionary, stitch
    from test_stitching import a_hand

    letters = "ABDEIKLOY"
    d = LetterDictionary("asl", {c: np.stack([a_hand(0.2 * i, seed=j) for j in range(2)]) for i, c in enumerate(letters)},
                         {c: np.array(["s1", "s2"]) for c in letters})
    seqs = [stitch(word, d, np.random.default_rng(k), fps=30) for k, word in enumerate(("BOIL KID", "LAY", "KILO"))]
    first = SequenceReader("asl-sequence")
    together = [first] + [first.shared() for _ in seqs[1:]]
    assert together[1].step is first.step and together[1].state is not first.state
    alone = [SequenceReader("asl-sequence") for _ in seqs]
    spec = FeatureSpec.from_dict(first.manifest.raw["features"])
    n = min(len(s.t) for s in seqs)
    for f in range(n):
        x = [spec.compute(s.landmarks[f][None], False, (640.0, 480.0))[0] if s.detected[f] else None for s in seqs]
        t = [float(s.t[f]) for s in seqs]
        got = step_streams(together, x, t)
        want = [r.update(xi, ti) for r, xi, ti in zip(alone, x, t)]
        assert [g[0] for g in got] == [w[0] for w in want] and [g[2] for g in got] == [w[2] for w in want]
        np.testing.assert_allclose([g[1] for g in got], [w[1] for w in want], atol=1e-4)
        if f == n // 2:
            together[1].reset()
            alone[1].reset()
    assert [r.text for r in together] == [r.text for r in alone] and any(r.text for r in alone)


@pytest.mark.data
def test_live_spells_two_videos_at_once_with_the_sequence_reader(tmp_path):
    from helpers import run_cli, write_spelling_video
    from realtime.images import read_image

    root = need_dataset("massey")
    photo = {r["label"]: root / r["path"] for r in manifest_rows(root) if r["signer"] == "hand1"}
    write_spelling_video(tmp_path / "lavy.mp4", [read_image(photo[c]) for c in "LAVY"])
    video = str(tmp_path / "lavy.mp4")
    one = run_cli("live", "--reader", "sequence", "--source", video, "--hands", "onnx", "--device", "cpu", "--no-window")
    two = run_cli("live", "--reader", "sequence", "--source", f"{video},{video}", "--hands", "onnx", "--device", "cpu",
                  "--no-window")
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    texts = dict(line.split(": ", 1) for line in two.stdout.strip().splitlines() if line[:1].isdigit())
    assert texts["0"] == texts["1"] == one.stdout.strip().splitlines()[-1] and texts["0"].strip()


@pytest.mark.data
def test_search_every_keeps_its_schedule_per_stream():
    """--search-every in the batched step: a stream that tracks a hand looks for a second one every 5th step, a
    stream that lost its hand looks at once, and each stream's hands are those it finds alone."""
    from realtime.bench import letterbox
    from realtime.images import read_image
    from realtime.pipeline import PipelineOptions
    from realtime.streams import MultiStreamRecognizer

    root = need_dataset("massey")
    row = next(r for r in manifest_rows(root) if r["label"] == "B")
    hand, blank = letterbox(read_image(root / row["path"]), (640, 480)), np.zeros((480, 640, 3), np.uint8)
    multi = MultiStreamRecognizer(2, PipelineOptions(hands="onnx", device="cpu", redetect_after=0, search_every=5))
    try:
        searched = []
        for step in range(8):  # stream 1 shows the hand, then loses it at step 3 and shows it again from step 4
            out = multi.process([hand, blank if step == 3 else hand], t=step / 30)
            searched.append(tuple(multi.tracker._since_search[i] == 0 for i in range(2)))  # 0: it searched now
            assert out[0].hand is not None and (out[1].hand is None) == (step == 3), step
    finally:
        multi.close()
    # stream 0: searched on its first step (nothing tracked), then every 5th; stream 1 also at step 4, right
    # after the frame that lost its hand (the step itself still tracked the old ROI, so it did not search)
    assert [s[0] for s in searched] == [True, False, False, False, False, True, False, False]
    assert [s[1] for s in searched] == [True, False, False, False, True, False, False, False]
