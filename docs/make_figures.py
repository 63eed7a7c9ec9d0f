"""Regenerate the figures of docs/saliency.md: ``python docs/make_figures.py``.

Writes ``docs/img/zscore_vs_pot.png``: the POT score against the z-score of
the same values, for normal columns (left) and heavy-tailed ones (right).
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

import evtools as ev  # noqa: E402

OUT = Path(__file__).resolve().parent / "img"


def zscore_vs_pot(path):
    rng = np.random.default_rng(0)
    n_ref = 20000
    normal = [stats.norm(loc=m, scale=s) for m, s in [(1, 0.2), (5, 1), (10, 3), (20, 0.5)]]
    heavy = [stats.lognorm(s=0.5), stats.lognorm(s=1.0), stats.pareto(b=3.0), stats.pareto(b=5.0)]
    names = ["normal(1, 0.2)", "normal(5, 1)", "normal(10, 3)", "normal(20, 0.5)",
             "lognormal(s=0.5)", "lognormal(s=1)", "Pareto(b=3)", "Pareto(b=5)"]
    dists = normal + heavy
    G_ref = np.column_stack([d.rvs(size=n_ref, random_state=rng) for d in dists])
    z_model = ev.ZScoreSaliency().fit(G_ref)
    pot_model = ev.POTSaliency().fit(G_ref)
    # each column evaluated along its own quantiles, from its median to far beyond its reference maximum
    p = np.logspace(np.log10(0.5), -7, 200)
    G = np.column_stack([d.isf(p) for d in dists])
    z, pot = z_model.score(G), pot_model.score(G)

    z_grid = np.linspace(0, 12, 300)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True, layout="constrained")
    panels = ((axes[0], range(4), "normal columns", 6.5), (axes[1], range(4, 8), "heavy right tails", 12))
    for ax, cols, title, z_max in panels:
        ax.plot(z_grid, -np.log10(stats.norm.sf(z_grid)), "k--", lw=1, label=r"$-\log_{10}\,\Phi(-z)$")
        for j in cols:
            ax.plot(z[:, j], pot[:, j], lw=1.8, label=names[j])
        ax.axhline(np.log10(n_ref), color="0.6", lw=0.8, ls=":", label="rarer than any reference value")
        ax.set_xlim(-0.5, z_max)
        ax.set_ylim(0, 8)
        ax.set_xlabel("z-score (Levin et al.)")
        ax.set_title(title)
        ax.legend(loc="lower right", fontsize=8)
    axes[0].set_ylabel(r"POT score $-\log_{10} P(S_k > g)$ (Wang & Sato)")
    fig.suptitle("Same values, two scores: one shared curve when columns are normal, one curve per column otherwise",
                 fontsize=10)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    zscore_vs_pot(OUT / "zscore_vs_pot.png")
    print(f"wrote {OUT / 'zscore_vs_pot.png'}")
