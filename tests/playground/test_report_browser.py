"""The report in a real browser: headless Chromium driven by Playwright, at 1280 × 900.

The contents links scroll to their sections under the bar that stays in view, each scenario's
table shows its headline metrics, clicking a header sorts the runs (each keeping its figures row),
the figures open, nothing is wider than the window and the console stays free of errors.
Screenshots go to the report's directory, `screenshots/`. Skipped, saying so, where no Chromium is
installed (Debian: `apt-get install chromium`; or set PLAYGROUND_CHROMIUM to a Chromium binary).
"""

import os
import shutil
from pathlib import Path

import pytest

import playground
from playground.demo import run_demo
from playground.scenarios import SCENARIOS

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed: pip install playwright"
)

CHROMIUM = os.environ.get("PLAYGROUND_CHROMIUM") or next(
    filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium installed (Debian: apt-get install chromium; or set PLAYGROUND_CHROMIUM)",
)
# Headless, and quiet: the machine's closed network refuses Chromium's own background connections.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTH, HEIGHT = 1280, 900


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Runs of two scenarios with their figures: three games that differ in one option at a time,
    and a short sine MAML run."""
    out = tmp_path_factory.mktemp("browser")
    for game, dynamics in (("bilinear", "sim_gd"), ("bilinear", "extragradient"), ("dirac_gan", "sim_gd")):
        playground.run(
            "game", game=game, dynamics=dynamics, lr=0.2, steps=30, init=(1.0, 1.0), progress=False,
            out=out / "game" / f"{game}-{dynamics}",
        )  # fmt: skip
    playground.run(
        "maml", iterations=5, eval_tasks=10, eval_every=5, progress=False, out=out / "maml" / "sine"
    )
    return playground.report(out, out=out / "report.html")


def open_page(browser, path: Path):
    page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.resolve().as_uri())
    return page, errors


def check_contents_links(page, shots: Path):
    links = page.locator("nav#contents a")
    assert links.count() >= 2
    for index in range(links.count()):
        target = links.nth(index).get_attribute("href")
        links.nth(index).click()
        page.wait_for_timeout(100)
        top = page.evaluate(f"document.querySelector('{target}').getBoundingClientRect().top")
        bar = page.evaluate("document.querySelector('nav#contents').getBoundingClientRect()")
        at_bottom = page.evaluate("window.scrollY + window.innerHeight >= document.body.scrollHeight - 1")
        assert bar["top"] == 0  # the contents stay in view
        assert bar["bottom"] <= top <= bar["bottom"] + 60 or (at_bottom and 0 <= top < HEIGHT), (target, top)
        page.screenshot(path=str(shots / f"contents-{index}-{target.lstrip('#')}.png"))


def headers(page, section: str) -> list[str]:
    return page.locator(f"{section} table.runs thead th").all_inner_texts()


def check_headline_metrics(page, expected: dict[str, list[str]]):
    for name, metrics in expected.items():
        section = page.locator("section", has=page.locator(f"h2:text-is('{name}')"))
        shown = [h.replace("\n", "") for h in section.locator("table.runs thead th").all_inner_texts()]
        assert set(metrics) <= set(shown), (name, metrics, shown)


def column(page, section_id: str, index: int) -> list[float]:
    return page.evaluate(
        f"Array.from(document.querySelectorAll('#{section_id} tr.run')).map("
        f"r => parseFloat(r.cells[{index}].getAttribute('data-sort')))"
    )


def check_sorting(page, section_id: str, metric: str):
    heads = [h.replace("\n", "") for h in page.locator(f"#{section_id} thead th").all_inner_texts()]
    index = heads.index(metric)
    before = column(page, section_id, index)
    head = page.locator(f"#{section_id} thead th").nth(index)
    head.click()
    ascending = column(page, section_id, index)
    head.click()
    descending = column(page, section_id, index)
    assert ascending == sorted(before) and descending == sorted(before, reverse=True)
    assert ascending != before or before == sorted(before)
    rows = page.evaluate(
        f"Array.from(document.querySelectorAll('#{section_id} tbody tr')).map(r => "
        "r.classList.contains('run') ? r.cells[0].textContent : '+' + r.querySelector('summary').textContent)"
    )
    for above, row in zip(rows, rows[1:]):  # each figures row still under its own run
        if row.startswith("+"):
            assert row.startswith(f"+{above}: "), (above, row)


def check_width_and_figures(page, shots: Path):
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    wide = page.evaluate(
        "Array.from(document.querySelectorAll('body *'))"
        f".filter(e => e.getBoundingClientRect().right > {WIDTH}).map(e => e.tagName + '.' + e.className)"
    )
    assert wide == []
    details = page.locator("tr.figures details")
    assert details.count() >= 1 and page.locator("tr.figures details[open]").count() == 0  # collapsed
    details.first.locator("summary").click()
    image = details.first.locator("img").first
    assert image.is_visible() and image.evaluate("i => i.naturalWidth") > 0
    page.screenshot(path=str(shots / "figures-open.png"))
    page.screenshot(path=str(shots / "full.png"), full_page=True)


def check_report(browser, path: Path, expected: dict[str, list[str]], sort_by: tuple[str, str]):
    shots = path.parent / "screenshots"
    shots.mkdir(exist_ok=True)
    page, errors = open_page(browser, path)
    page.screenshot(path=str(shots / "top.png"))
    check_headline_metrics(page, expected)
    check_contents_links(page, shots)
    check_sorting(page, *sort_by)
    check_width_and_figures(page, shots)
    assert errors == []
    assert {p.name for p in shots.iterdir()} >= {"top.png", "figures-open.png", "full.png"}
    page.close()


def test_the_report_in_a_browser(browser, report):
    expected = {
        "game": ["rate/measured", "known", "rate/predicted", "dist"],
        "maml": ["eval/pre_adapt_mse", "eval/post_adapt_mse", "known", "eval/post_eval_steps_mse"],
    }
    check_report(browser, report, expected, sort_by=("s-0-game", "rate/predicted"))


@pytest.mark.slow
def test_the_demo_report_in_a_browser(browser, tmp_path):
    """`playground demo`'s page: every scenario's headline metrics, under 3 MB."""
    path = run_demo(tmp_path / "demo")
    assert path.stat().st_size < 3e6
    expected = {
        name: [m for m in scenario.headline if "[" not in m][:2] for name, scenario in SCENARIOS.items()
    }
    expected["game"] = ["rate/measured", "rate/predicted", "known", "dist"]
    check_report(browser, path, expected, sort_by=("s-3-game", "rate/predicted"))
