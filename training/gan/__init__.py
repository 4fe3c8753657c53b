"""GANs that generate labelled hand-sign images (paper 000): ReACGAN (label-conditioned) and SPADE (pose-conditioned).

Layout after NVlabs SPADE: ``normalization`` (conditional BatchNorm, SPADE), ``generator``, ``discriminator``,
``losses`` (hinge, D2D-CE), ``diffaug``, ``pose_maps``; ``config`` and ``trainer`` run them; ``sampling``
generates and filters datasets; ``metrics`` scores a generator in a real-data classifier's feature space.
"""
