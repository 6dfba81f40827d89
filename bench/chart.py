"""The chart of `make bench`: each case, ours beside its baseline, and the targets.

``bench/run.py`` builds the figures it measured into :class:`Comparison` and
:class:`Target` values and calls :func:`write_chart`, which draws them with matplotlib
(no display: an Agg canvas, saved as SVG) into ``bench/results/latest.svg``:

- one panel per case (comparisons with the same ``case``, in the order first given),
  each comparison a pair of horizontal bars, ours above its baseline, in the case's unit,
  each bar labelled with its value (ours also with its ratio to the baseline);
- one panel of the targets: a bar per target, the measured value divided by its goal, so
  that the goal is the one dashed line at 1 for all of them; a bar is green when the
  target is met, red when missed. Targets not measured (``n/a``) get no bar and are
  listed in the caption.

The SVG keeps its text as text (``svg.fonttype: none``: diffable, searchable) and is the
same bytes for the same data: fixed ids (``svg.hashsalt``), no date in its metadata.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["Comparison", "Target", "format_value", "goal_value", "write_chart"]

OURS_COLOUR = "#1f6fb4"
BASELINE_COLOUR = "#a0a0a0"
MET_COLOUR = "#2e9e44"
MISSED_COLOUR = "#d0383a"
#: Characters per line of a panel's title before it wraps. Bar names do not wrap: a viewer
#: draws the SVG's text in its own sans-serif font, and only a one-line name stays anchored
#: to the axis whatever that font's widths (keep them short: the case holds the detail).
TITLE_WIDTH = 100
#: Inches: the figure's width, a bar's row, a panel's title and spacing.
WIDTH = 11.0
ROW = 0.22
PANEL = 0.5
#: Rows (bar heights) of a panel of comparisons: ours, its baseline, a gap, per pair.
PAIR = 2.6

_GOAL = re.compile(r"^\s*(>=|<=|>|<|=)?\s*([0-9]*\.?[0-9]+)\s*$")


@dataclass(frozen=True)
class Comparison:
    """One figure of ours beside the figure of one baseline, in the same unit.

    ``case`` names the panel; comparisons with the same case share it (and must then
    share ``unit`` and ``higher_is_better``), told apart by ``variant`` (e.g.
    ``"8 putters"``). ``ours_name`` labels our bar where "ours" would not say what
    it is (e.g. ``"1-entry Store"`` beside ``"health Check"``).
    """

    case: str
    ours: float
    baseline: float
    baseline_name: str
    unit: str
    higher_is_better: bool = True
    variant: str = ""
    ours_name: str = "ours"


@dataclass(frozen=True)
class Target:
    """A target line of ``latest.md``: ``target <name> <measured> <goal> met|missed``.

    ``goal`` is the comparison and the goal value as ``latest.md`` writes them
    (``">=0.70"``, ``"<=1.50"``, ``"<200"``); ``measured`` and ``met`` are None when the
    target was not measured (``n/a``).
    """

    name: str
    measured: float | None
    goal: str
    met: bool | None


def format_value(value: float) -> str:
    """A figure as a label: thousands separated, about three significant digits."""
    if not math.isfinite(value):
        return "n/a"
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def goal_value(goal: str) -> float:
    """The number of a goal such as ``">=0.70"`` or ``"<200"``."""
    match = _GOAL.match(goal)
    if match is None or float(match.group(2)) <= 0:
        raise ValueError(f"goal {goal!r} is not a comparison with a positive number")
    return float(match.group(2))


def _measured(target: Target) -> float | None:
    if target.measured is None or target.met is None or not math.isfinite(target.measured):
        return None
    return target.measured


def _panels(comparisons: Sequence[Comparison]) -> list[list[Comparison]]:
    """Comparisons grouped by case, in the order each case first appears."""
    grouped: dict[str, list[Comparison]] = {}
    for comparison in comparisons:
        panel = grouped.setdefault(comparison.case, [])
        if panel and (panel[0].unit, panel[0].higher_is_better) != (
            comparison.unit,
            comparison.higher_is_better,
        ):
            raise ValueError(
                f"case {comparison.case!r}: every comparison of a case needs the same unit "
                f"and direction ({panel[0].unit!r} vs {comparison.unit!r})"
            )
        panel.append(comparison)
    return list(grouped.values())


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def _case_rows(panel: list[Comparison]) -> float:
    return len(panel) * PAIR - 0.4


def _target_rows(targets: list[Target]) -> float:
    return len(targets) + 0.2


def _bar_label(ax: Axes, y: float, value: float, text: str, right: float) -> None:
    """The value at the end of its bar (at the axis for a missing value)."""
    x = value if math.isfinite(value) else 0.0
    ax.text(x + right * 0.008, y, text, va="center", ha="left", fontsize=8)


def _draw_case(ax: Axes, panel: list[Comparison]) -> None:
    first = panel[0]
    finite = [v for c in panel for v in (c.ours, c.baseline) if math.isfinite(v)]
    right = max([*finite, 0.0]) * 1.6 or 1.0
    ticks: list[float] = []
    labels: list[str] = []
    for index, comparison in enumerate(panel):
        top = index * PAIR
        prefix = f"{comparison.variant}: " if comparison.variant else ""
        ratio = (
            f" ({comparison.ours / comparison.baseline:.2f}x)"
            if math.isfinite(comparison.ours)
            and math.isfinite(comparison.baseline)
            and comparison.baseline
            else ""
        )
        for y, value, name, colour, extra in (
            (top, comparison.ours, comparison.ours_name, OURS_COLOUR, ratio),
            (top + 1, comparison.baseline, comparison.baseline_name, BASELINE_COLOUR, ""),
        ):
            if math.isfinite(value):
                ax.barh(y, value, height=0.8, color=colour)
            text = (
                f"{format_value(value)} {comparison.unit}{extra}"
                if math.isfinite(value)
                else "not measured"
            )
            _bar_label(ax, y, value, text, right)
            ticks.append(y)
            labels.append(prefix + name)
    ax.set_yticks(ticks, labels, fontsize=8)
    ax.set_ylim(_case_rows(panel) - 0.7, -0.7)  # the first bar on top
    ax.set_xlim(0, right)
    ax.set_xticks([])
    direction = "higher is better" if first.higher_is_better else "lower is better"
    ax.set_title(
        _wrap(f"{first.case}  [{first.unit}, {direction}]", TITLE_WIDTH),
        loc="left",
        fontsize=9,
        fontweight="bold",
    )
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)


def _draw_targets(ax: Axes, targets: list[Target]) -> None:
    shares = [(t, _measured(t) or 0.0) for t in targets]
    fractions = [value / goal_value(t.goal) for t, value in shares]
    right = max([*fractions, 1.0]) * 1.55
    for y, ((target, value), fraction) in enumerate(zip(shares, fractions, strict=True)):
        colour = MET_COLOUR if target.met else MISSED_COLOUR
        ax.barh(y, fraction, height=0.7, color=colour)
        verdict = "met" if target.met else "missed"
        # Right of the goal line too, so that the line never crosses the text.
        label = f"{format_value(value)}, goal {target.goal}: {verdict}"
        _bar_label(ax, y, max(fraction, 1.0), label, right)
    ax.axvline(1.0, color="#333333", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(targets)), [t.name for t in targets], fontsize=8)
    ax.set_ylim(_target_rows(targets) - 0.6, -0.6)
    ax.set_xlim(0, right)
    ax.set_xticks([0, 1], ["0", "goal"], fontsize=8)
    ax.set_title(
        "Targets: measured ÷ goal (dashed line: the goal; a >= goal is met right of it,"
        " a <= or < goal left of it)",
        loc="left",
        fontsize=9,
        fontweight="bold",
    )
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def write_chart(
    comparisons: Sequence[Comparison],
    targets: Sequence[Target],
    path: Path,
    *,
    title: str,
) -> Path:
    """Draws the comparisons (a panel per case) and the targets into the SVG ``path``.

    ``title`` heads the chart: say when and at what scale it was measured (e.g.
    ``"make bench 2026-12-01 20:46 UTC: 200,000 entries (BENCH_SCALE=1.0)"``); the chart
    itself holds no date, so the same data give the same bytes.
    """
    panels = _panels(comparisons)
    measured = [t for t in targets if _measured(t) is not None]
    missing = [t for t in targets if _measured(t) is None]
    # A panel's height in bar rows: the same inches per row in every panel.
    rows = [_case_rows(panel) for panel in panels]
    if measured:
        rows.append(_target_rows(measured))
    with rc_context(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": "hz-sidecar-bench",
            "font.family": "sans-serif",
            "font.size": 9,
        }
    ):
        height = sum(ROW * r + PANEL for r in rows) + 0.6 + (0.25 if missing else 0)
        figure = Figure(figsize=(WIDTH, max(height, 2.0)), layout="constrained")
        FigureCanvasAgg(figure)  # no display: never a GUI backend
        figure.suptitle(_wrap(title, 110), x=0.01, ha="left", fontsize=11, fontweight="bold")
        if rows:
            grid = figure.add_gridspec(len(rows), 1, height_ratios=rows)
            for index, panel in enumerate(panels):
                _draw_case(figure.add_subplot(grid[index]), panel)
            if measured:
                _draw_targets(figure.add_subplot(grid[len(panels)]), measured)
        else:
            figure.text(0.5, 0.5, "nothing measured", ha="center", va="center")
        if missing:
            figure.supxlabel(
                _wrap(
                    "Not measured (n/a): "
                    + "; ".join(f"{t.name} (goal {t.goal})" for t in missing),
                    140,
                ),
                x=0.01,
                ha="left",
                fontsize=8,
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="svg", metadata={"Date": None})
    return path
