"""The report's figures: ranges, fits, labels and axes."""

from __future__ import annotations

import numpy as np


def test_clipped_error_bars_stay_in_the_unit_interval():
    from attndilute.report.figures import clipped_error

    means, sds = np.array([0.01, 0.5, 0.98]), np.array([0.05, 0.1, 0.05])
    err = clipped_error(means, sds)
    assert np.all(means - err["arrayminus"] >= 0) and np.all(means + err["array"] <= 1)
    np.testing.assert_allclose(err["arrayminus"], [0.01, 0.1, 0.05])
    np.testing.assert_allclose(err["array"], [0.05, 0.1, 0.02])
    np.testing.assert_allclose(clipped_error([0.2], [np.nan])["array"], [0.0])


def test_no_least_squares_line_through_fewer_than_five_points():
    import pandas as pd

    from attndilute.report.figures import MIN_FIT_POINTS, adi_vs_padding

    def lines(n):
        frame = pd.DataFrame({"scan": [f"s{i}" for i in range(n)], "adi": np.linspace(0, 0.1, n),
                              "padding_fraction": np.linspace(0, 0.5, n)})  # fmt: skip
        fig = adi_vs_padding({"base": frame}, {}, 3, ["base"])
        return sum(t.mode == "lines" for t in fig.data)

    assert MIN_FIT_POINTS == 5
    assert lines(4) == 0 and lines(5) == 1


def test_model_label_names_configurations_not_files():
    from attndilute.names import model_label

    assert model_label("random:smit-tiny") == "random:smit-tiny"
    assert model_label("/tmp/.demo-fast.tmp-4242/runs/base/best.safetensors") == "base"
    assert model_label("D/runs/act/last.safetensors") == "act"
    assert model_label("models/swin_ct.pt") == "swin_ct"
    assert model_label("init:A", "act") == "random init of act"


def test_adi_figure_title_never_a_checkpoint_stem(tmp_path):
    from attndilute.study.adi_figures import display_title

    assert display_title("best", tmp_path / "adi" / "act" / "adi.png") == "ADI of act"
    assert display_title("swin_ct", tmp_path / "adi.png") == "swin_ct"


def test_cka_colour_scale_fits_the_data():
    from attndilute.store.cka_figures import cka_range

    assert cka_range(np.array([[0.62, 0.9], [np.nan, 0.71]])) == (0.62, 0.9)
    assert cka_range(np.full((2, 2), 0.5)) == (0.49, 0.51)
    assert cka_range(np.full((2, 2), np.nan)) == (0.0, 1.0)


def test_one_epoch_training_curve_shows_a_point_on_a_whole_epoch_axis():
    import pandas as pd

    from attndilute.report.figures import training_curves

    metrics = {"base": pd.DataFrame({"epoch": [1], "train_loss": [1.5], "val_dice": [0.0]})}
    fig = training_curves(metrics, ["base"])
    assert all("markers" in t.mode for t in fig.data)
    assert list(fig.layout.xaxis.range) == [0.5, 1.5] and fig.layout.xaxis.dtick == 1
    assert fig.layout.yaxis.title.text == "training loss"
