"""The keypoint features of :mod:`realtime.features` as a torch module, so that they can run on the GPU inside the
hands stage's CUDA graph (:mod:`realtime.torch_reader`) instead of on the host after the landmarks came back.

:class:`TorchFeatures` computes what :meth:`realtime.features.FeatureSpec.compute` computes, part by part and in
the same layout, from landmarks that always have their wrist (the hand pipelines' own; J2S's regressor, which may
miss it, stays on the host). It works in float32 where the host works in float64: ``tests/test_torch_reader.py``
holds the two within 1e-5 of each other on real and random hands. No host tensor and no shape logic from the data
inside ``forward``: a CUDA graph captures it.
"""
from __future__ import annotations

import math

import numpy as np

from realtime.features import _BEND_A, _BONE_FROM, _BONE_TO, _TIP_A, _TIP_B, PALM_BASES, PARTS, WRIST, FeatureSpec


def _module_class():
    import torch

    def unit(v):
        return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-9)

    class TorchFeatures(torch.nn.Module):
        """(landmarks (M, 21, 3) frame pixels, is_left (M,) bool, image sizes (M, 2) width, height) -> (M, dim)
        float32, as ``spec.compute``."""

        def __init__(self, spec: FeatureSpec):
            super().__init__()
            if spec.points != "image":
                raise ValueError(f"features of {spec.points} landmarks are computed on the host only (MediaPipe's "
                                 "own pipeline gives them)")
            self.spec = spec
            for name, index in (("bone_from", _BONE_FROM), ("bone_to", _BONE_TO), ("bend_a", _BEND_A),
                                ("tip_a", _TIP_A), ("tip_b", _TIP_B), ("palm_bases", np.array(PALM_BASES))):
                self.register_buffer(name, torch.from_numpy(np.asarray(index, np.int64)), persistent=False)

        def forward(self, landmarks, is_left, image_size):
            lm = landmarks.float()
            size = image_size.float()
            rel = lm - lm[:, WRIST:WRIST + 1]  # every part is wrist-relative (or made of differences)
            if self.spec.canonical:  # left hands mirrored (x -> W - x): relative x negated. Mirrored after the
                # subtraction, so that in float32 a joint a hair right of the wrist stays right of it, as on the host
                x = torch.where(is_left[:, None], 0.0 - rel[..., 0], rel[..., 0])  # 0 - 0 = +0: the wrist's
                # own angle stays atan2(0, +0) = 0 (a -0 would make it pi)
                rel = torch.cat([x[..., None], rel[..., 1:]], -1)
            scale = rel.index_select(1, self.palm_bases).norm(dim=-1).mean(-1).clamp_min(1e-6)  # hand_size
            out = []
            for part in self.spec.parts:
                if part == "j2s_polar":
                    f = self._j2s_polar(rel, size)
                elif part == "polar_scaled":
                    r = rel[..., :2].norm(dim=-1) / scale[:, None]
                    f = torch.stack([r, torch.atan2(rel[..., 1], rel[..., 0]) / (2 * math.pi)], -1)
                elif part == "geometry":
                    f = self._geometry(rel, scale)
                else:  # cart_scaled
                    f = rel / scale[:, None, None]
                out.append(f.reshape(len(rel), PARTS[part][1]))
            return torch.cat(out, -1)

        @staticmethod
        def _j2s_polar(rel, size):
            """Paper 003 eq. 1-2 (:func:`realtime.features.j2s_polar`) with the wrist present."""
            dx, dy = rel[..., 0], rel[..., 1]
            r = torch.sqrt(dx * dx + dy * dy) / size.square().sum(-1).sqrt()[:, None]
            safe = torch.where(dx == 0, torch.ones_like(dx), dx)
            theta = torch.where(dx == 0, torch.sign(dy) * (math.pi / 2), torch.atan(dy / safe))
            return torch.stack([r, theta / (2 * math.pi)], -1)

        def _geometry(self, lm, scale):
            """:func:`realtime.features.hand_geometry` (of wrist-relative points: it takes only differences): 15 bends,
            10 fingertip distances, the palm's normal."""
            bones = unit(lm.index_select(1, self.bone_to) - lm.index_select(1, self.bone_from))
            bends = (bones.index_select(1, self.bend_a) * bones.index_select(1, self.bend_a + 1)).sum(-1)
            dists = (lm.index_select(1, self.tip_a) - lm.index_select(1, self.tip_b)).norm(dim=-1) / scale[:, None]
            normal = unit(torch.linalg.cross(lm[:, 5] - lm[:, WRIST], lm[:, 17] - lm[:, WRIST], dim=-1))
            return torch.cat([bends, dists, normal], -1)

    return TorchFeatures


def torch_features(spec: FeatureSpec):
    """A :class:`TorchFeatures` module for ``spec``; imports torch only when called."""
    return _module_class()(spec)
