"""MediaPipe's palm detector and hand-landmark models (the .tflite files in the mediapipe 0.10.21 wheel) -> ONNX.

    python -m export.mediapipe_hands --out weights/mediapipe-hands

Converts the four bundled models (palm detection and hand landmarks, lite and full) with
:mod:`export.tflite_to_onnx`, checks each ONNX file against the TFLite interpreter on random and
image-like inputs when one is installed (``tflite-runtime`` or ``ai-edge-litert``, the ``convert``
extra; otherwise the check is skipped and said so), and writes ``manifest.json`` (sources and their
sha256, the ONNX files' sha256, inputs, normalisation, outputs, the parity figures, the command),
``PROVENANCE.md`` and the Apache-2.0 licence text beside them. The runtime (:mod:`realtime.hands.onnx`)
needs none of the conversion tools.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import shutil
import sys
from pathlib import Path

import numpy as np

from export.tflite_to_onnx import OPSET, convert
from realtime.manifest import file_fields, sha256_file, write_manifest

MEDIAPIPE_VERSION = "0.10.21"
KIND = "hand-pipeline"

PALM_OUTPUTS = [
    {"name": "boxes", "shape": ["batch", 2016, 18],
     "meaning": "per SSD anchor: box x, y, w, h then 7 keypoints x, y, in 192-px input units relative to the anchor"},
    {"name": "scores", "shape": ["batch", 2016, 1], "meaning": "per anchor: palm logit (sigmoid after clipping to +-100)"},
]
LANDMARK_OUTPUTS = [
    {"name": "landmarks", "shape": ["batch", 63],
     "meaning": "21 x (x, y, z): x, y in 224-px crop pixels; z in the same units, scaled by 1/0.4 in MediaPipe"},
    {"name": "presence", "shape": ["batch", 1], "meaning": "hand presence probability (sigmoid applied)"},
    {"name": "handedness", "shape": ["batch", 1],
     "meaning": "probability of 'Left' in MediaPipe's mirrored (selfie) convention, 'Right' is 1 - p"},
    {"name": "world_landmarks", "shape": ["batch", 63], "meaning": "21 x (x, y, z) in metres around the hand centre"},
]
MODELS = {
    "palm_detection_lite": ("palm_detection", 192, PALM_OUTPUTS),
    "palm_detection_full": ("palm_detection", 192, PALM_OUTPUTS),
    "hand_landmark_lite": ("hand_landmark", 224, LANDMARK_OUTPUTS),
    "hand_landmark_full": ("hand_landmark", 224, LANDMARK_OUTPUTS),
}
# What the runtime does around the models: MediaPipe's graph options (hand_landmark_tracking_cpu and its
# subgraphs in the wheel), recorded here for reference; realtime/hands/onnx.py implements them.
PIPELINE = {
    "palm_detection": {
        "crop": "whole frame letterboxed to 192x192 (keep aspect ratio), zero border, bilinear",
        "anchors": {"num_layers": 4, "min_scale": 0.1484375, "max_scale": 0.75, "input_size": [192, 192],
                    "anchor_offset": [0.5, 0.5], "strides": [8, 16, 16, 16], "aspect_ratios": [1.0],
                    "fixed_anchor_size": True, "interpolated_scale_aspect_ratio": 1.0, "count": 2016},
        "decoding": {"box_format": "XYWH (reverse_output_order)", "x_scale": 192, "y_scale": 192, "w_scale": 192,
                     "h_scale": 192, "num_keypoints": 7, "sigmoid_score": True, "score_clipping_thresh": 100.0,
                     "min_score_thresh": "min_detection (0.5)"},
        "nms": {"algorithm": "WEIGHTED", "overlap": "IoU", "min_suppression_threshold": 0.3},
        "roi": {"rotation_keypoints": [0, 2], "target_angle_degrees": 90, "scale": 2.6, "shift_y": -0.5,
                "square_long": True},
    },
    "hand_landmark": {
        "crop": "rotated square ROI -> 224x224, replicate border, bilinear",
        "presence_threshold": "min_tracking (0.5)",
        "z_scale": "1 / 224 / 0.4 * ROI side",
        "roi_from_landmarks": {"landmarks": [0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18], "rotation": "wrist -> "
                               "mean of (index MCP + ring MCP)/2 and middle MCP, target 90 degrees",
                               "scale": 2.0, "shift_y": -0.1, "square_long": True},
        "tracking": "palm detection only while fewer than max_hands hands are tracked; ROIs of palms and of "
                    "tracked hands are merged by IoU > 0.5, the tracked one kept",
    },
}


def mediapipe_modules() -> Path:
    try:
        import mediapipe
    except ImportError as e:
        raise SystemExit("mediapipe is not installed (pip install 'mediapipe==0.10.21')") from e
    if mediapipe.__version__ != MEDIAPIPE_VERSION:
        print(f"warning: mediapipe {mediapipe.__version__} is installed; the shipped files come from "
              f"{MEDIAPIPE_VERSION}", file=sys.stderr)
    return Path(mediapipe.__file__).parent / "modules"


def tflite_interpreter():
    """(Interpreter class, description) of an installed TFLite interpreter, or (None, reason)."""
    from importlib.metadata import version

    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, f"ai-edge-litert {version('ai-edge-litert')}"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, f"tflite-runtime {version('tflite-runtime')}"
    except ImportError:
        return None, "no TFLite interpreter installed (pip install tflite-runtime): parity not checked"


def _parity_inputs(size: int) -> np.ndarray:
    """Uniform noise, and a smooth image-like pattern with a bright blob (something palm-like to react to)."""
    rng = np.random.default_rng(0)
    noise = rng.random((1, size, size, 3), dtype=np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    blob = np.exp(-((xx - 0.5) ** 2 + (yy - 0.55) ** 2) / 0.03)
    smooth = np.stack([0.2 + 0.6 * blob, 0.15 + 0.5 * blob * (1 - yy), 0.1 + 0.4 * blob * xx], -1)[None]
    return np.concatenate([noise, smooth.astype(np.float32)])


def parity(tflite_path: Path, onnx_bytes: bytes, size: int, output_names: list[str]) -> dict:
    """Largest |TFLite - ONNX Runtime| per output on the parity inputs (TFLite runs one image at a time)."""
    import onnxruntime as ort

    Interpreter, what = tflite_interpreter()
    if Interpreter is None:
        return {"checked": False, "why": what}
    it = Interpreter(model_path=str(tflite_path))
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    outs = it.get_output_details()
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    x = _parity_inputs(size)
    got = sess.run(output_names, {"input": x})
    worst = {n: 0.0 for n in output_names}
    scale = {n: 0.0 for n in output_names}
    for b in range(len(x)):
        it.set_tensor(inp["index"], x[b:b + 1])
        it.invoke()
        # TFLite's output order is the subgraph's, the same as the converter's (names given in that order)
        for n, d, g in zip(output_names, outs, got):
            ref = it.get_tensor(d["index"])
            worst[n] = max(worst[n], float(np.abs(ref - g[b:b + 1]).max()))
            scale[n] = max(scale[n], float(np.abs(ref).max()))
    return {"checked": True, "interpreter": what, "inputs": "uniform noise and a smooth blob image, batch of 2 "
            "(ONNX) against one at a time (TFLite)", "max_abs": worst, "max_abs_reference": scale}


PROVENANCE = """# MediaPipe hand models in ONNX

These four files are conversions of the TensorFlow Lite models bundled in the `mediapipe`
{version} Python wheel (`mediapipe/modules/palm_detection/palm_detection_{{lite,full}}.tflite` and
`mediapipe/modules/hand_landmark/hand_landmark_{{lite,full}}.tflite`). The models and their
weights are Google's, released under the Apache License 2.0 (`LICENSE.md` in this folder, copied
from the wheel). Copyright Google LLC. The conversion changes the file format, not the function:
the same weights (float16, as in the TFLite files; the PReLU slopes as 1 - alpha in float32), the
same computation; see `manifest.json` for the sha256 of each source and each ONNX file and for
the largest difference from the TFLite interpreter.

Made by

```
{command}
```

with `export/tflite_to_onnx.py` (this repository's converter, ONNX opset {opset}).

Changes from the TFLite graphs, none of which changes the function computed:

- the input stays NHWC (`(batch, H, W, 3)`, RGB in [0, 1]) and is transposed to NCHW inside;
- PRELU is written as `x + (1 - alpha) * relu(-x)`, with the two products as depthwise 1x1
  convolutions (ONNX Runtime's PRelu is slow on the CPU and leaves its fast blocked layout);
- the batch dimension is free, so several hand crops can run at once;
- outputs are renamed: palm `boxes`, `scores`; landmarks `landmarks`, `presence`, `handedness`,
  `world_landmarks`.

The pre- and post-processing MediaPipe runs around the models (letterbox, SSD anchors, weighted
non-maximum suppression, the rotated hand crop, tracking) is re-implemented in `realtime/hands/ssd.py`,
`realtime/hands/roi.py` and `realtime/hands/onnx.py`.
"""


def convert_one(key: str, modules: Path | None = None):
    """One of :data:`MODELS` from the installed wheel -> (ONNX ModelProto, TFLite op counts, source path)."""
    folder, _, outputs = MODELS[key]
    src = (modules or mediapipe_modules()) / folder / f"{key}.tflite"
    model, ops = convert(src, input_name="input", output_names=[o["name"] for o in outputs],
                         doc=f"{key} from mediapipe {MEDIAPIPE_VERSION} (Apache-2.0, Google)",
                         metadata={"source": f"mediapipe/modules/{folder}/{key}.tflite",
                                   "source_sha256": sha256_file(src), "mediapipe": MEDIAPIPE_VERSION,
                                   "licence": "Apache-2.0"})
    return model, ops, src


def export_all(out: str | Path, command: str | None = None) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    modules = mediapipe_modules()
    command = command or "python -m export.mediapipe_hands --out " + str(out)
    models = {}
    for key, (folder, size, outputs) in MODELS.items():
        names = [o["name"] for o in outputs]
        model, ops, src = convert_one(key, modules)
        data = model.SerializeToString()
        check = parity(src, data, size, names)
        path = out / f"{key}.onnx"
        path.write_bytes(data)
        models[key] = {
            **file_fields(path),
            "source": f"mediapipe/modules/{folder}/{key}.tflite", "source_sha256": sha256_file(src),
            "source_bytes": src.stat().st_size,
            "input": {"name": "input", "shape": ["batch", size, size, 3], "dtype": "float32", "layout": "NHWC",
                      "colour": "RGB", "range": [0.0, 1.0]},
            "outputs": outputs, "tflite_ops": ops, "parity": check,
        }
        line = ("max |TFLite - ONNX| " + ", ".join(f"{k} {v:.2e}" for k, v in check["max_abs"].items())
                if check["checked"] else check["why"])
        print(f"{key}: {path} ({path.stat().st_size / 1e6:.2f} MB); {line}")
    manifest = {
        "name": out.name, "kind": KIND, "models": models, "pipeline": PIPELINE,
        "source": {"package": "mediapipe", "version": MEDIAPIPE_VERSION, "licence": "Apache-2.0",
                   "copyright": "Google LLC", "handedness_labels": ["Left", "Right"]},
        "command": command, "converter": "export/tflite_to_onnx.py", "opset": OPSET,
        "created": _dt.date.today().isoformat(),
    }
    write_manifest(out, manifest)
    (out / "PROVENANCE.md").write_text(PROVENANCE.format(version=MEDIAPIPE_VERSION, command=command, opset=OPSET))
    licence = modules.parent.parent / f"mediapipe-{MEDIAPIPE_VERSION}.dist-info" / "LICENSE"
    if licence.is_file():
        shutil.copy(licence, out / "LICENSE.md")
    else:
        print(f"warning: {licence} not found; add the Apache-2.0 licence text to {out} by hand", file=sys.stderr)
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.mediapipe_hands", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="weights/mediapipe-hands", help="folder to write (default: %(default)s)")
    args = p.parse_args(argv)
    export_all(args.out, "python -m export.mediapipe_hands --out " + args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
