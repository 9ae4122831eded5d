"""lessons_lib.figures: the grids and curves every notebook draws."""
import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from lessons_lib import figures  # noqa: E402


def test_loss_grid_draws_one_panel_per_model_with_the_chosen_curves():
    histories = {"unet": {"epoch": [1, 2], "train_loss": [0.3, 0.2], "val_loss": [0.4, 0.3], "seconds": [5, 5]},
                 "gan": {"train_g_loss": [3.0, 2.0], "train_d_loss": [0.7, 0.6]},
                 "vae": {"train_loss": [0.5, 0.4]}}
    fig = figures.plot_loss_grid(histories, keys=("train_loss", "val_loss", "train_g_loss", "train_d_loss"),
                                 columns=2)
    axes = fig.axes
    assert len(axes) == 4 and not axes[3].axison          # 3 panels, the 4th switched off
    assert [a.get_title() for a in axes[:3]] == ["unet", "gan", "vae"]
    assert {line.get_label() for line in axes[0].lines} == {"train_loss", "val_loss"}  # no "seconds"
    assert len(axes[1].lines) == 2
    with pytest.raises(ValueError, match="at least one history"):
        figures.plot_loss_grid({})


def test_loss_curves_switch_to_a_log_scale_when_they_span_orders_of_magnitude():
    import matplotlib.pyplot as plt

    gan = figures.plot_losses({"train_g_loss": [104.0, 94.0], "train_d_loss": [0.7, 0.5], "val_loss": [0.02, 0.02]})
    assert gan.axes[0].get_yscale() == "log"     # else d_loss and val_loss lie flat on zero
    plain = figures.plot_losses({"train_loss": [0.3, 0.2], "val_loss": [0.4, 0.3]})
    assert plain.axes[0].get_yscale() == "linear"
    negative = figures.plot_losses({"train_loss": [-1.0, 200.0]})   # a log axis cannot show it
    assert negative.axes[0].get_yscale() == "linear"
    assert figures.plot_losses({"train_loss": [0.3, 0.2]}, logy=True).axes[0].get_yscale() == "log"
    plt.close("all")


def test_show_rows_and_save_rows(tmp_path):
    rows = {"a": torch.rand(3, 3, 8, 8), "b": torch.rand(3, 1, 8, 8)}
    fig = figures.show_rows(rows, n=2)
    assert len(fig.axes) == 4
    path = figures.save_rows(rows, tmp_path / "grid.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileExistsError):
        figures.save_rows(rows, tmp_path / "grid.png")
