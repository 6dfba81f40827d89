"""The chart of `make bench` (bench/chart.py): an SVG with each case, ours beside its
baseline, and the targets against their goals; the same data give the same bytes."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench.chart import (
    BASELINE_COLOUR,
    MET_COLOUR,
    MISSED_COLOUR,
    OURS_COLOUR,
    Comparison,
    Target,
    format_value,
    goal_value,
    write_chart,
)

SVG = "{http://www.w3.org/2000/svg}"
TITLE = "make bench 2026-12-01 20:46 UTC: 200,000 entries (BENCH_SCALE=1.0)"

COMPARISONS = [
    Comparison(
        "(2) storeAll over gRPC, batch 1000",
        34_189,
        163_543,
        "raw COPY ceiling",
        "entries/s",
        variant="view map",
    ),
    Comparison(
        "(2) storeAll over gRPC, batch 1000",
        27_047,
        124_919,
        "raw COPY ceiling",
        "entries/s",
        variant="event map",
    ),
    Comparison(
        "(6) point Load p99",
        849,
        671,
        "SELECT p99 + gRPC p99",
        "µs",
        higher_is_better=False,
    ),
    Comparison(
        "(6) cold start, EAGER load",
        8.6,
        5.3,
        "in-JVM JDBC loader",
        "s",
        higher_is_better=False,
    ),
    Comparison("(7) sidecar peak RSS", 83.07, 200, "limit", "MB", higher_is_better=False),
]
TARGETS = [
    Target("storeall-vs-ceiling", 0.21, ">=0.70", False),
    Target("point-load-p99", 1.26, "<=1.50", True),
    Target("e2e-vs-generic-mapstore", None, ">=1.50", None),
    Target("sidecar-peak-rss-mb", 83.07, "<200", True),
]


def texts(path: Path) -> list[str]:
    """Every <text> of the SVG (which must parse as XML), one string per element."""
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return ["".join(node.itertext()) for node in root.iter(f"{SVG}text")]


def bar_widths(path: Path, colour: str) -> list[float]:
    """The widths of the rectangles filled with ``colour``, in document order."""
    widths = []
    for node in ET.parse(path).getroot().iter(f"{SVG}path"):
        if f"fill: {colour}" not in node.get("style", ""):
            continue
        xs = [float(x) for x in re.findall(r"[ML] (-?[0-9.]+) ", node.get("d", ""))]
        widths.append(max(xs) - min(xs))
    return widths


def test_chart_has_every_case_value_and_target(tmp_path: Path) -> None:
    path = write_chart(COMPARISONS, TARGETS, tmp_path / "results" / "latest.svg", title=TITLE)

    assert path == tmp_path / "results" / "latest.svg"
    found = texts(path)
    joined = "\n".join(found)
    assert TITLE in joined
    for case in {c.case for c in COMPARISONS}:
        assert case in joined, case
    for label in (
        # ours with its ratio to the baseline, the baseline alone, in the case's unit
        "34,189 entries/s (0.21x)",
        "163,543 entries/s",
        "27,047 entries/s (0.22x)",
        "124,919 entries/s",
        "849 µs (1.27x)",
        "671 µs",
        "8.60 s (1.62x)",
        "5.30 s",
        "83.1 MB (0.42x)",
        "200 MB",
        # the names of the bars, the variant before them
        "view map: ours",
        "view map: raw COPY ceiling",
        "event map: ours",
        "SELECT p99 + gRPC p99",
        "in-JVM JDBC loader",
        # the direction of each case
        "entries/s, higher is better",
        "µs, lower is better",
        # the targets: names, values against their goals, the verdict
        "storeall-vs-ceiling",
        "0.21, goal >=0.70: missed",
        "1.26, goal <=1.50: met",
        "83.1, goal <200: met",
    ):
        assert label in found or label in joined, label
    # The target not measured has no bar: it is named in the caption only.
    assert "e2e-vs-generic-mapstore" not in found
    assert "Not measured (n/a): e2e-vs-generic-mapstore (goal >=1.50)" in joined


def test_bars_are_drawn_to_scale_and_coloured(tmp_path: Path) -> None:
    path = write_chart(COMPARISONS, TARGETS, tmp_path / "latest.svg", title=TITLE)

    ours = bar_widths(path, OURS_COLOUR)
    baselines = bar_widths(path, BASELINE_COLOUR)
    assert len(ours) == len(baselines) == len(COMPARISONS)
    for comparison, mine, theirs in zip(COMPARISONS, ours, baselines, strict=True):
        assert mine / theirs == pytest.approx(comparison.ours / comparison.baseline, rel=1e-3)
    # Targets: one bar each, measured ÷ goal, green when met, red when missed; none for n/a.
    met = bar_widths(path, MET_COLOUR)
    missed = bar_widths(path, MISSED_COLOUR)
    assert len(met) == 2 and len(missed) == 1
    assert met[0] / missed[0] == pytest.approx((1.26 / 1.50) / (0.21 / 0.70), rel=1e-3)


def test_same_data_same_bytes(tmp_path: Path) -> None:
    first = write_chart(COMPARISONS, TARGETS, tmp_path / "a.svg", title=TITLE)
    second = write_chart(COMPARISONS, TARGETS, tmp_path / "b.svg", title=TITLE)

    assert first.read_bytes() == second.read_bytes()
    assert b"<dc:date>" not in first.read_bytes()
    # ... and other data, other bytes.
    changed = [*COMPARISONS[:-1], Comparison("(7) sidecar peak RSS", 90, 200, "limit", "MB")]
    third = write_chart(changed, TARGETS, tmp_path / "c.svg", title=TITLE)
    assert third.read_bytes() != first.read_bytes()


def test_no_targets(tmp_path: Path) -> None:
    path = write_chart(COMPARISONS[:1], [], tmp_path / "latest.svg", title=TITLE)

    joined = "\n".join(texts(path))
    assert "34,189 entries/s (0.21x)" in joined
    assert "Targets" not in joined
    assert "Not measured" not in joined
    assert bar_widths(path, MET_COLOUR) == bar_widths(path, MISSED_COLOUR) == []


def test_only_targets_not_measured(tmp_path: Path) -> None:
    targets = [Target("e2e-vs-generic-mapstore", None, ">=1.50", None)]
    path = write_chart(COMPARISONS[:1], targets, tmp_path / "latest.svg", title=TITLE)

    joined = "\n".join(texts(path))
    assert "Targets" not in joined  # no panel without a bar
    assert "Not measured (n/a): e2e-vs-generic-mapstore (goal >=1.50)" in joined


def test_nothing_at_all(tmp_path: Path) -> None:
    path = write_chart([], [], tmp_path / "latest.svg", title=TITLE)

    assert "nothing measured" in texts(path)


def test_a_baseline_not_measured_has_no_bar(tmp_path: Path) -> None:
    comparisons = [
        Comparison("(4) ingest", 13_537, 22_550, "in-JVM JDBC MapStore", "entries/s"),
        Comparison("(4) ingest", 13_537, math.nan, "GenericMapStore", "entries/s"),
    ]
    path = write_chart(comparisons, [], tmp_path / "latest.svg", title=TITLE)

    found = texts(path)
    assert "not measured" in found
    assert "13,537 entries/s (0.60x)" in found
    assert "13,537 entries/s" in found  # ours beside the missing one, without a ratio
    assert len(bar_widths(path, OURS_COLOUR)) == 2
    assert len(bar_widths(path, BASELINE_COLOUR)) == 1


def test_a_case_keeps_one_unit(tmp_path: Path) -> None:
    comparisons = [
        Comparison("(5) write-through", 691, 1605, "JDBC", "puts/s"),
        Comparison("(5) write-through", 1.2, 0.9, "JDBC", "ms", higher_is_better=False),
    ]
    with pytest.raises(ValueError, match="same unit"):
        write_chart(comparisons, [], tmp_path / "latest.svg", title=TITLE)


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (163_543.4, "163,543"),
        (849.0, "849"),
        (24.44, "24.4"),
        (8.6, "8.60"),
        (0.214, "0.21"),
        (math.nan, "n/a"),
    ],
)
def test_format_value(value: float, label: str) -> None:
    assert format_value(value) == label


@pytest.mark.parametrize(
    ("goal", "value"), [(">=0.70", 0.7), ("<=1.50", 1.5), ("<200", 200.0), ("> 5", 5.0)]
)
def test_goal_value(goal: str, value: float) -> None:
    assert goal_value(goal) == value


@pytest.mark.parametrize("goal", ["", "fast", ">=0", ">=-1", "1..2"])
def test_goal_value_rejects(goal: str) -> None:
    with pytest.raises(ValueError, match="goal"):
        goal_value(goal)
