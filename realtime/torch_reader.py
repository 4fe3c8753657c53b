"""The letter read inside the hands stage's GPU step: features and the keypoint classifier on the device.

With ``--hands torch --backend torch`` both the landmark net and the classifier are torch modules on one device.
The host path downloads each frame's landmarks, computes the features in numpy, uploads them, runs the classifier
and downloads its probabilities: two round trips and 0.7 ms of host Python a frame on the lent H200. Here the
landmark step (one CUDA graph: crops, net, projection) goes on to the features (:mod:`realtime.torch_features`)
and the classifier, for every hand it tracks, and one download brings back landmarks, presence, handedness and
probabilities together. The hands come back with their ``reading``; :class:`realtime.pipeline.Recognizer` and
:class:`realtime.streams.MultiStreamRecognizer` use it instead of running the features and classifier stages.

What stays on the host path (:func:`device_reader` says why, in words): another hand pipeline or classifier
backend, fp16, a calibration profile (it reads the classifier's embedding on the host), ``--reader sequence``,
photos (the static cascade re-maps the landmarks after the step), and a hand found by ``--redetect-after``'s full
model (read on the host as before, in the same frame).
"""
from __future__ import annotations

from realtime.features import FeatureSpec

def _module_class():
    import torch

    from realtime.torch_features import torch_features

    class DeviceReader(torch.nn.Module):
        """(landmarks (M, 21, 3) frame pixels, is_left (M,) bool, frame sizes (M, 2)) -> (M, n_labels) probabilities:
        the features of ``spec`` and the classifier module (its first output: the probabilities)."""

        def __init__(self, spec: FeatureSpec, classifier, labels: list[str]):
            super().__init__()
            self.features, self.classifier, self.labels = torch_features(spec), classifier, list(labels)

        def forward(self, landmarks, is_left, sizes):
            out = self.classifier(self.features(landmarks, is_left, sizes))
            return (out[0] if isinstance(out, (tuple, list)) else out).float()

    return DeviceReader


def reader_module(spec: FeatureSpec, classifier_module, labels: list[str]):
    """A DeviceReader of a torch classifier module (torch imported only when called)."""
    return _module_class()(spec, classifier_module, labels)


def why_not_fused(options, classifier) -> str | None:
    """Why the classifier cannot run inside the hands stage's step with these options, or None when it can."""
    from realtime.backends import TorchBackend
    from realtime.classifier import OnnxClassifier
    from realtime.hands import HAND_PIPELINES

    if not options.fuse:
        return "--no-fuse (asked for: the host path, to compare)"
    if not HAND_PIPELINES[options.hands].reads:
        reading = [name for name, row in HAND_PIPELINES.items() if row.reads]
        return f"--hands {options.hands} (only --hands {' or '.join(reading)} carries the classifier)"
    if options.static:
        return "photos (the cascade maps each view's landmarks back after the step)"
    if type(classifier) is not OnnxClassifier:  # calibrated, image, fused, J2S and sequence readers
        return f"the {type(classifier).__name__} reads on the host"
    backend = classifier.backend
    if not isinstance(backend, TorchBackend):
        return f"the classifier runs on {backend.name} (--backend torch puts it beside the hand nets)"
    if backend.precision != "fp32":
        return "--precision fp16 (the fused step runs fp32)"
    if classifier.spec.points != "image":
        return "a model of world landmarks"
    if classifier.distance is not None:
        return "--reject-far-hands (it measures the classifier's embedding on the host)"
    return None


def device_reader(options, classifier):
    """The DeviceReader to hand to the tracker of ``options.hands``, or None (see :func:`why_not_fused`)."""
    if why_not_fused(options, classifier) is not None:
        return None
    return reader_module(classifier.spec, classifier.backend.module, classifier.labels)
