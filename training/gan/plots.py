"""Loss curves of a GAN run (the sample grids are written by ``sampling.save_grid``)."""
from __future__ import annotations

from pathlib import Path


GAN_PANELS = (("hinge losses", ("d_adv", "g_adv")), ("D2D-CE (ReACGAN)", ("d_cond", "g_cond")))


def plot_gan_history(history: list[dict], path: str | Path, panels=GAN_PANELS) -> None:
    """One panel per (title, keys) of ``panels``, each key a curve over the steps."""
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5))
    for a, (title, keys) in zip(ax, panels):
        for key in keys:
            a.plot(steps, [h[key] for h in history], label=key)
        a.set_title(title)
        a.set_xlabel("step")
        a.legend()
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
