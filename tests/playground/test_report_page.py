"""What the report shows: a section per scenario with its headline metrics and the known answers
beside them, overlays only of runs that differ in one option, numbers to the digits their CI
supports, and plots whose tick labels render."""

import math
import re

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

import playground
from playground import page
from playground.plots import overlay_curves


@pytest.fixture(scope="module")
def games_page(tmp_path_factory):
    """Three game runs: bilinear under sim_gd and extragradient, dirac_gan under sim_gd."""
    out = tmp_path_factory.mktemp("report")
    for game, dynamics in (("bilinear", "sim_gd"), ("bilinear", "extragradient"), ("dirac_gan", "sim_gd")):
        playground.run(
            "game",
            game=game,
            dynamics=dynamics,
            lr=0.2,
            steps=20,
            init=(1.0, 1.0),
            plots=False,
            progress=False,
            out=out / "runs" / f"{game}-{dynamics}",
        )
    return playground.report(out / "runs", out=out / "report.html").read_text()


def rows(text, section):
    body = text.split(f"<h2>{section}</h2>")[1].split("</section>")[0]
    return re.findall(r"<tr class='run[^']*'>(.*?)</tr>", body)


def test_a_section_per_scenario_linked_from_the_contents(games_page):
    assert re.findall(r"<a href='#(s-[^']+)'>game \(3\)</a>", games_page) == ["s-0-game"]
    assert "<section id='s-0-game'>" in games_page
    header = re.search(r"<thead><tr>(.*?)</tr></thead>", games_page).group(1)
    names = [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", header)]
    # only the options that vary, then the headline metrics, each known answer beside its metric
    assert names == [
        "run", "game", "dynamics", "rate/measured", "known", "rate/predicted", "known", "dist",
        "status", "code", "wall s",
    ]  # fmt: skip


def test_the_closed_form_sits_beside_the_runs_own_rate(games_page):
    cells = {}
    for row in rows(games_page, "game"):
        name = re.search(r"<td class='name text'>(.*?)</td>", row).group(1)
        cells[name] = re.findall(r"<td class='known' data-sort='([^']+)' title='([^']+)'", row)
    assert cells["runs/dirac_gan-sim_gd"] == []  # no closed form known for the Dirac GAN
    (sim, sim_again), (extra, _) = cells["runs/bilinear-sim_gd"], cells["runs/bilinear-extragradient"]
    assert sim == sim_again and float(sim[0]) == pytest.approx(math.sqrt(1 + 0.2**2), rel=1e-15)
    assert float(extra[0]) == pytest.approx(math.sqrt(1 - 0.2**2 + 0.2**4), rel=1e-15)
    assert "√(1+η²)" in sim[1] and "√(1−η²+η⁴)" in extra[1]
    assert "<ol class='sources'><li>closed form √(1−η²+η⁴)" in games_page  # sources listed, in order met


def test_overlays_only_of_runs_that_differ_in_one_option(games_page):
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", games_page)
    assert sorted(captions) == [
        "2 runs, dynamics varies; all at game=bilinear",
        "2 runs, game varies; all at dynamics=sim_gd",
    ]


@pytest.mark.parametrize(
    "value, ci, shown",
    [
        (0.54321, 0.0621, "0.543 ± 0.062"),
        (-20.3149, 3.2, "-20.3 ± 3.2"),
        (0.96444, 0.0039, "0.9644 ± 0.0039"),
        (1234.5, 150.0, "1234 ± 150"),
        (0.5, 0.0, "0.5"),  # no spread: four significant digits
        (1.0198039, None, "1.02"),
        (1.2345678e-10, None, "1.235e-10"),
        (math.nan, 0.1, "nan"),
        (list(range(200)), None, "0, 1, …, 199 (200 values)"),
        ([1.5, 0.75], None, "1.5,0.75"),
        ({}, None, "{}"),
        (None, None, ""),
    ],
)
def test_numbers_to_the_digits_their_ci_supports(value, ci, shown):
    assert page._fmt(value, ci) == shown


def test_a_ci_is_a_band_around_its_metric_and_a_known_answer_a_line():
    rows_a = [{"step": s, "eval/mse": 1.0 / (s + 1), "eval/mse_ci95": 0.1} for s in range(5)]
    rows_b = [{"step": s, "eval/mse": 2.0 / (s + 1), "eval/mse_ci95": 0.2} for s in range(5)]
    fig = overlay_curves(
        {"0.1": rows_a, "0.2": rows_b}, ["eval/mse", "eval/mse_ci95"], "lr", {"eval/mse": [(0.77, "paper")]}
    )
    (ax,) = fig.axes  # no panel of its own for the CI
    assert ax.get_title() == "eval/mse"
    assert [line.get_label() for line in ax.get_lines()] == ["0.1", "0.2", "known: 0.77 (paper)"]
    assert ax.get_lines()[2].get_ydata()[0] == 0.77
    (band_a, band_b) = ax.collections
    low, high = band_a.get_paths()[0].vertices[:, 1].min(), band_a.get_paths()[0].vertices[:, 1].max()
    assert (low, high) == pytest.approx((0.2 - 0.1, 1.0 + 0.1))
    assert fig.legends[0].get_title().get_text() == "lr"


def test_tick_labels_render_as_math_and_names_as_written():
    rows_ = [{"step": s, "dist": 10.0**-s} for s in range(6)]
    fig = overlay_curves({"$x^2$": rows_, "b": rows_}, ["dist"], "$\\frac{", None)
    FigureCanvasAgg(fig).draw()
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    ticks = [t for t in ax.get_yticklabels() if t.get_text()]
    assert ticks and all(t._preprocess_math(t.get_text())[1] for t in ticks)  # drawn as math
    legend = fig.legends[0]
    texts = [t.get_text() for t in legend.get_texts()] + [legend.get_title().get_text()]
    assert [t for t in legend.get_texts() + [legend.get_title()] if t._preprocess_math(t.get_text())[1]] == []
    assert [t.replace("\\$", "$") for t in texts] == ["$x^2$", "b", "$\\frac{"]
