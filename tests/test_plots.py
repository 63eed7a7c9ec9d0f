"""evtools.plots: every plot is drawn, on a given or a new axes, with labelled axes."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import evtools as ev  # noqa: E402
from evtools import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def G_ref():
    rng = np.random.default_rng(1)
    return np.column_stack([rng.normal(5, 1, 1500), rng.lognormal(0, 1, 1500), rng.exponential(1e-3, 1500)])


def _labelled(ax):
    return bool(ax.get_xlabel()) and bool(ax.get_ylabel()) and bool(ax.get_title() or ax.figure._suptitle)


def test_qq_normal(G_ref):
    ax = plots.plot_qq_normal(G_ref[:, 0])
    assert _labelled(ax) and len(ax.lines) == 2
    x, y = ax.lines[0].get_data()
    np.testing.assert_array_equal(y, np.sort(G_ref[:, 0]))
    fig, mine = plt.subplots()
    assert plots.plot_qq_normal(G_ref[:, 1], ax=mine) is mine


def test_qq_gpd_from_model_or_scorer(G_ref):
    pot = ev.POTSaliency().fit(G_ref)
    for model in (pot, pot.tail_):
        ax = plots.plot_qq_gpd(model, G_ref, 1)
        assert _labelled(ax)
        q, excess = ax.lines[0].get_data()
        t = pot.tail_.threshold[1]
        np.testing.assert_allclose(excess, np.sort(G_ref[G_ref[:, 1] > t, 1] - t))
        assert np.all(np.diff(q) > 0)
    with pytest.raises(ev.InvalidInputError, match="column"):
        plots.plot_qq_gpd(pot, G_ref, 3)


def test_threshold_choice_plots(G_ref):
    ax = plots.plot_mean_residual_life(G_ref[:, 1])
    assert _labelled(ax) and len(ax.lines) == 1 and len(ax.collections) == 1
    axes = plots.plot_parameter_stability(G_ref[:, 2], min_exceed=50)
    assert axes.shape == (2,)
    assert all(ax.get_xlabel() == "threshold" and ax.get_ylabel() for ax in axes)
    assert axes[1].get_ylabel() == "shape xi"


def test_depth_profile_bar_chart():
    layers = np.repeat(["conv1", "conv2", "fc"], [4, 8, 4])
    ranks = np.array([[0, 5, 12], [1, 2, 3], [15, 9, 4]])
    prof = ev.depth_profile(ranks, layers)
    ax = plots.plot_depth_profile(prof)
    assert _labelled(ax)
    assert len(ax.patches) == 6
    assert [t.get_text() for t in ax.get_xticklabels()] == ["conv1", "conv2", "fc"]
    np.testing.assert_allclose([p.get_height() for p in ax.patches[:3]], prof.observed_share)


def test_figure_saves(G_ref, tmp_path):
    ax = plots.plot_qq_normal(G_ref[:, 0])
    ax.figure.savefig(tmp_path / "qq.png")
    assert (tmp_path / "qq.png").stat().st_size > 1000
