"""The gate's pages: the HTML report of a window (counters over time, the verdict and its reasons) and
the Markdown summary a sign-off quotes. Built from the replay report's building blocks
(``shadowdiff.reporting.html``), so both look alike.
"""

from __future__ import annotations

from collections.abc import Sequence

from shadowdiff.reporting.html import anchor_at, badge, escape, page, svg_open, table
from shadowdiff.runbook.gate import GateResult, Sample

__all__ = ["render_gate", "render_gate_markdown"]


def _counter_plot(series: Sequence[Sample], starts: frozenset[int], width: int = 1100) -> str:
    """The shadow's counters over time, one panel each; lines break where a segment ``starts``."""
    good = [s for s in series if not s.gap]
    if not good:
        return "<p>No status samples.</p>"
    t0, t1 = series[0].t, max(series[-1].t, series[0].t + 1.0)
    left, panel_h, gap = 130, 90, 18
    names = [
        ("transition_checks", "#0969da"),
        ("total_divergences", "#bf8700"),
        ("shadow_failures", "#cf222e"),
    ]
    height = len(names) * (panel_h + gap) + 30
    plot_w = width - left - 20

    def x_of(t: float) -> float:
        return left + plot_w * (t - t0) / (t1 - t0)

    out = [svg_open(width, height, "shadow counters over time")]
    for index, (name, colour) in enumerate(names):
        top = 8 + index * (panel_h + gap)
        values = [v for s in good if (v := s.counters.get(name)) is not None]
        peak = max(values, default=0) or 1
        out.append(f'<text x="8" y="{top + 36}" font-size="12">{escape(name)}</text>')
        out.append(
            f'<text x="8" y="{top + 52}" font-size="11" fill="#656d76">max {max(values, default=0)}</text>'
        )
        out.append(
            f'<rect x="{left}" y="{top}" width="{plot_w}" height="{panel_h}" fill="none" stroke="#d8dce3"/>'
        )
        for sample in series:
            if sample.gap:
                out.append(
                    f'<line x1="{x_of(sample.t):.1f}" y1="{top}" x2="{x_of(sample.t):.1f}" '
                    f'y2="{top + panel_h}" stroke="#cf222e" stroke-opacity="0.35"/>'
                )
        runs: list[list[str]] = [[]]
        stride = max(1, len(good) // 1500)
        for position, sample in enumerate(good):
            value = sample.counters.get(name)
            if value is None or (sample.seq in starts and runs[-1]):
                runs.append([])
            if value is not None and (position % stride == 0 or position == len(good) - 1 or not runs[-1]):
                y = top + panel_h - panel_h * value / peak
                runs[-1].append(f"{x_of(sample.t):.1f},{y:.1f}")
        for points in runs:
            if points:
                joined = " ".join(points)
                out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{joined}"/>')
    axis_y = height - 8
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        hours = (t1 - t0) * frac / 3600
        x, anchor = left + plot_w * frac, anchor_at(frac)
        out.append(
            f'<text x="{x:.1f}" y="{axis_y}" font-size="11" text-anchor="{anchor}">+{hours:.1f} h</text>'
        )
    out.append("</svg>")
    return "".join(out)


def render_gate(result: GateResult) -> str:
    """A gate result as one HTML page (the evidence bundle's stand-in for a dashboard screenshot)."""
    window = result.window
    body = [f"<h1>Shadow gate {badge(result.verdict)}</h1>"]
    if window.get("synthetic"):
        body.append('<p class="banner">SYNTHETIC DATA: made by a demo or a test, not by production.</p>')
    body.append(
        f'<p class="muted">{escape(window.get("start"))} .. {escape(window.get("end"))}'
        f" · {escape(window.get('hours'))} h · {escape(window.get('samples'))} samples"
        f" · {escape(window.get('gap_samples'))} gap samples</p>"
    )
    body.append("<h2>Criteria</h2>")
    body.append(
        table(
            ["criterion", "status", "measured", "deciding seqs", "action"],
            (
                [
                    escape(c.name),
                    badge(c.status),
                    escape(c.figure),
                    escape(", ".join(map(str, c.seqs[:10])) + (" ..." if len(c.seqs) > 10 else "")),
                    escape(c.action or (f"(none yet) {c.advice}" if c.status != "PASS" else "")),
                ]
                for c in result.criteria
            ),
        )
    )
    body.append(
        "<h2>Counters over time</h2>"
        + _counter_plot(result.series, frozenset(s.first_seq for s in result.segments))
    )
    body.append("<h2>Segments (split at counter resets)</h2>")
    body.append(
        table(
            ["#", "seqs", "from", "to", "samples", "divergences max/last", "failures max/last"],
            (
                [
                    escape(s.index),
                    escape(f"{s.first_seq}-{s.last_seq}"),
                    escape(s.start),
                    escape(s.end),
                    escape(s.samples),
                ]
                + [escape(f"{s.max[k]}/{s.last[k]}") for k in ("total_divergences", "shadow_failures")]
                for s in result.segments
            ),
            numeric=(4,),
        )
    )
    body.append("<h2>Clusters</h2>")
    body.append(
        table(
            ["signature", "count", "first", "last", "hot path", "triage"],
            (
                [
                    f"<code>{escape(c.signature)}</code>",
                    *(escape(value) for value in (c.count, c.first, c.last)),
                    escape("yes" if c.hot_path else "no"),
                    escape(c.triage or "untriaged"),
                ]
                for c in result.clusters
            ),
            numeric=(1,),
        )
        if result.clusters
        else "<p>No clusters.</p>"
    )
    return page(f"shadow gate: {result.verdict}", body)


def render_gate_markdown(result: GateResult) -> str:
    """The verdict for a sign-off document: criteria table, segments, clusters."""
    window = result.window
    lines = [f"# Shadow gate: {result.verdict}", ""]
    if window.get("synthetic"):
        lines += ["**SYNTHETIC DATA**: these samples were made by a demo or a test, not by production.", ""]
    lines += [
        f"Window: {window.get('start')} .. {window.get('end')} ({window.get('hours')} h, "
        f"{window.get('samples')} samples, {window.get('gap_samples')} gap samples)",
        "",
        "| criterion | status | measured | deciding seqs | action |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in result.criteria:
        seqs = ", ".join(str(seq) for seq in c.seqs[:10]) + (" ..." if len(c.seqs) > 10 else "")
        action = c.action or (f"(none yet) {c.advice}" if c.status != "PASS" else "")
        lines.append(f"| {c.name} | {c.status} | {_cell(c.figure)} | {seqs} | {_cell(action)} |")
    lines += ["", "## Segments (split at counter resets)", ""]
    lines += [
        "| # | seqs | from | to | samples | divergences max/last | failures max/last |",
        "| --- " * 7 + "|",
    ]
    for s in result.segments:
        div = f"{s.max['total_divergences']}/{s.last['total_divergences']}"
        fail = f"{s.max['shadow_failures']}/{s.last['shadow_failures']}"
        lines.append(
            f"| {s.index} | {s.first_seq}-{s.last_seq} | {s.start} | {s.end} | {s.samples} | {div} | {fail} |"
        )
    lines += ["", "## Clusters", ""]
    if not result.clusters:
        lines.append("None.")
    else:
        lines += ["| signature | count | first | last | hot path | triage |", "| --- " * 6 + "|"]
        for cl in result.clusters:
            hot = "yes" if cl.hot_path else "no"
            note = _cell(cl.triage or "untriaged")
            lines.append(
                f"| `{_cell(cl.signature)}` | {cl.count} | {cl.first} | {cl.last} | {hot} | {note} |"
            )
    lines += [
        "",
        "Staging rule: ACCEPT when every criterion passes or exactly one is in REVIEW with an action; "
        "REJECT when any fails; EXTEND otherwise.",
        "",
    ]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
