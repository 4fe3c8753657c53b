"""Builds the generator and discriminator a GAN config asks for: the one place that knows which network pair each
model (ReACGAN, SPADE) uses, shared by the trainer and by sampling from a checkpoint."""
from __future__ import annotations

from training.gan.config import GANConfig
from training.gan.discriminator import Discriminator
from training.gan.generator import Generator
from training.gan.pose_maps import POSE_KINDS


def build_models(config: GANConfig, num_classes: int) -> tuple[Generator, Discriminator]:
    """ReACGAN: label-conditioned generator and D2D-CE discriminator; SPADE: pose-map generator, and a
    discriminator that sees the image with its pose maps."""
    if config.model == "reacgan":
        g = Generator(config.size, config.z_dim, config.g_ch, "label", num_classes=num_classes, sn=config.g_sn)
        d = Discriminator(config.size, config.d_ch, 3, num_classes=num_classes, embed_dim=config.embed_dim)
    else:
        pc = POSE_KINDS[config.pose]
        g = Generator(config.size, config.z_dim, config.g_ch, "pose", pose_channels=pc,
                      spade_hidden=config.spade_hidden, sn=config.g_sn)
        d = Discriminator(config.size, config.d_ch, 3 + pc)
    return g, d
