"""One dataclass per H-GAN run, read from YAML (``fingerspell train hgan --config FILE``); the files in
``configs/`` say only what differs from the defaults, which follow paper 001 (learning rate 5e-5, Xavier
initialisation, cycle weight 10, identity 0.5, least squares, the multi-scale perceptual discriminator)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from training.hgan.networks import DISCRIMINATORS
from training.io import config_from_dict, config_to_dict, read_config_yaml
from training.hgan.render import BACKGROUNDS

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass
class HGANConfig:
    name: str = "hgan"
    # the real domain: hand crops of a dataset, framed as the image classifiers see them
    dataset: str = "lis"
    size: int = 32
    labels: list[str] | None = None
    exclude_signers: list[str] = field(default_factory=list)  # held out for the classifiers' test
    flip: bool = True
    # the synthetic domain: rendered from the real datasets' keypoints, turned and mirrored
    pose_datasets: list[str] | None = None  # None: the real domain's dataset
    synthetic: int = 20000
    yaw: float = 35.0
    pitch: float = 25.0
    roll: float = 20.0
    mirror: float = 0.5
    background: str = "dark"
    # networks
    ngf: int = 32
    blocks: int = 6  # 4, 6 or 9 in the paper
    discriminator: str = "perceptual"  # perceptual | patch | pixel
    ndf: int = 32
    patch_layers: int = 2
    features: str | None = None  # perceptual: a 'cnn' classifier folder; None: trained once on the real crops
    vgg16_weights: str | None = None  # perceptual: torchvision VGG-16 weights, used instead of the hand CNN
    mask_refine: bool = True  # the synthetic->real output is kept inside the rendered hand's mask
    # losses and optimisation
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5  # times lambda_cycle, as CycleGAN's code weighs it
    pool_size: int = 50
    steps: int = 4000
    batch_size: int = 8
    lr: float = 5e-5
    betas: tuple[float, float] = (0.5, 0.999)
    ema_decay: float = 0.999
    ema_start: int = 200
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    checkpoint_every: int = 200
    sample_every: int = 500
    log_every: int = 25
    # stop (sample grid, checkpoint) once this much wall time has passed, even before ``steps``: the short GPU
    # presets must fit one lent-GPU command; the same command later continues from the checkpoint
    max_minutes: float | None = None

    def __post_init__(self):
        if self.discriminator not in DISCRIMINATORS:
            raise ValueError(f"discriminator must be one of {DISCRIMINATORS}, got {self.discriminator!r}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background must be one of {BACKGROUNDS}, got {self.background!r}")
        if self.size % 8:
            raise ValueError(f"size must be a multiple of 8 (the generator halves it twice, the perceptual "
                             f"discriminator three times), got {self.size}")
        if self.steps < 1 or self.batch_size < 1 or self.synthetic < self.batch_size:
            raise ValueError("steps >= 1, batch_size >= 1 and synthetic >= batch_size are required")
        self.betas = tuple(self.betas)

    @classmethod
    def from_dict(cls, d: dict) -> "HGANConfig":
        return config_from_dict(cls, d, "H-GAN")

    def to_dict(self) -> dict:
        return config_to_dict(self)


def load_config(name_or_path: str, overrides: dict | None = None) -> HGANConfig:
    """A YAML file, or the name of a shipped config (``lis-hgan-cpu``)."""
    return HGANConfig.from_dict(read_config_yaml(name_or_path, CONFIG_DIR, "H-GAN", overrides))
