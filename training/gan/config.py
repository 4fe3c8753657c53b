"""One dataclass per GAN run, read from YAML (``fingerspell train gan --config FILE``), after StudioGAN's
per-dataset, per-method configs. Every field has a default; the files in ``configs/`` only say what differs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from training.io import config_from_dict, config_to_dict, read_config_yaml

CONFIG_DIR = Path(__file__).parent / "configs"
MODELS = ("reacgan", "spade")


@dataclass
class GANConfig:
    name: str = "gan"
    model: str = "reacgan"  # reacgan: label-conditioned; spade: pose-conditioned
    # data
    dataset: str = "lis"  # a folder name under $FINGERSPELL_DATASETS, or a path
    crop: str = "hand"  # hand: framed by the landmarks; whole: the image squashed to a square
    size: int = 32
    labels: list[str] | None = None  # a subset of the classes; None: all
    exclude_signers: list[str] = field(default_factory=list)  # held out for the classifier's test set
    per_class: int | None = None  # limited-data runs: keep this many training images per class (stratified)
    flip: bool = True  # random horizontal flips of the real images (and their poses)
    # models
    z_dim: int = 64
    g_ch: int = 16
    d_ch: int = 16
    g_sn: bool = True
    embed_dim: int = 128  # ReACGAN: D2D-CE embedding size
    pose: str = "bones"  # SPADE: bones (20 channels) or keypoints (21 heatmaps)
    spade_hidden: int = 32
    # losses
    cond_lambda: float = 1.0  # ReACGAN: weight of D2D-CE; the paper raises it so images show their label
    temperature: float = 0.5
    m_p: float = 0.98
    m_n: float = 0.02
    diffaug: list[str] = field(default_factory=lambda: ["color", "translation", "cutout"])
    # optimisation
    steps: int = 5000
    batch_size: int = 32
    d_steps: int = 2  # discriminator updates per generator update
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    ema_decay: float = 0.999
    ema_start: int = 500
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    # bookkeeping
    checkpoint_every: int = 250
    sample_every: int = 500
    log_every: int = 25
    # stop (sample grid, checkpoint) once this much wall time has passed, even before ``steps``: the short GPU
    # presets must fit one lent-GPU command; the same command later continues from the checkpoint
    max_minutes: float | None = None
    evaluator: str | None = None  # real-data classifier folder for the metrics; None: trained when needed
    metrics_samples: int = 2000  # generated images for the end-of-run metrics

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.pose not in ("bones", "keypoints"):
            raise ValueError(f"pose must be 'bones' or 'keypoints', got {self.pose!r}")
        if self.steps < 1 or self.batch_size < 2 or self.d_steps < 1:
            raise ValueError("steps >= 1, batch_size >= 2 and d_steps >= 1 are required")
        if self.model == "spade" and self.crop != "hand":
            raise ValueError("SPADE needs poses: use crop: hand")
        self.betas = tuple(self.betas)

    @classmethod
    def from_dict(cls, d: dict) -> "GANConfig":
        return config_from_dict(cls, d, "GAN")

    def to_dict(self) -> dict:
        return config_to_dict(self)


def load_config(name_or_path: str, overrides: dict | None = None) -> GANConfig:
    """A YAML file, or the name of a shipped config (``lis-reacgan-cpu``)."""
    return GANConfig.from_dict(read_config_yaml(name_or_path, CONFIG_DIR, "GAN", overrides))
