"""Server-side SVG charts: well-formed, escaped, and drawing what they are given."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from modeling.charts import accuracy_bars_svg, confusion_svg, reliability_svg

SVG = "{http://www.w3.org/2000/svg}"


def test_bar_chart_draws_one_bar_and_whisker_per_group_and_escapes_labels():
    rows = [
        {
            "attribute": "race",
            "group": "<script>x</script>",
            "n": 40,
            "accuracy": 0.8,
            "ci_low": 0.7,
            "ci_high": 0.9,
            "flagged": True,
        },
        {
            "attribute": "glasses",
            "group": "none",
            "n": 5,
            "accuracy": 0.95,
            "ci_low": 0.6,
            "ci_high": 1.0,
            "too_few": True,
        },
        {
            "attribute": "job",
            "group": "empty",
            "n": 0,
            "accuracy": None,
            "ci_low": None,
            "ci_high": None,
        },
    ]
    svg = accuracy_bars_svg(rows, overall=0.9)
    root = ET.fromstring(svg)  # well-formed XML
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    bars = root.findall(f"{SVG}rect")
    assert len(bars) == 2 and bars[0].get("fill") == "#b42318"
    assert len(root.findall(f"{SVG}path")) == 2
    assert len(root.findall(f"{SVG}line")) == 1  # the overall accuracy


def test_confusion_and_reliability_charts_show_counts_and_points():
    root = ET.fromstring(confusion_svg(["male", "female"], [[50, 7], [12, 31]]))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert {"50", "7", "12", "31"} <= set(texts)
    assert "rows: human label →" in texts and "columns: model predicted →" in texts
    bins = [
        {"n": 10, "mean_predicted": 0.15, "observed": 0.1},
        {"n": 0, "mean_predicted": None, "observed": None},
        {"n": 30, "mean_predicted": 0.85, "observed": 0.9},
    ]
    root = ET.fromstring(reliability_svg(bins))
    assert len(root.findall(f"{SVG}circle")) == 2
    ticks = [t.text for t in root.iter(f"{SVG}text")]
    assert all(ticks.count(label) == 2 for label in ("0", "0.25", "0.5", "0.75", "1"))
