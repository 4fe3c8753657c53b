"""Loss curves of a GAN run (the sample grids are written by ``sampling.save_grid``)."""
from __future__ import annotations

from pathlib import Path


def plot_gan_history(history: list[dict], path: str | Path) -> None:
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    for key in ("d_adv", "g_adv"):
        ax[0].plot(steps, [h[key] for h in history], label=key)
    for key in ("d_cond", "g_cond"):
        ax[1].plot(steps, [h[key] for h in history], label=key)
    ax[0].set_title("hinge losses")
    ax[1].set_title("D2D-CE (ReACGAN)")
    for a in ax:
        a.set_xlabel("step")
        a.legend()
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
