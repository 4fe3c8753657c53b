"""H-GAN (paper 001): hands rendered from keypoints (render.py), translated to the real domain by a CycleGAN
with multi-scale perceptual discriminators (networks.py, losses.py, trainer.py), written as labelled crops
(translate.py) and scored as the paper does (metrics.py). ``config.py`` holds the run settings, ``data.py`` the
two domains, ``commands.py`` the CLI."""
