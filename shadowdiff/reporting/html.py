"""Reports for people. Self-contained HTML: one file, inline CSS and SVG, no script, no network.

Two pages: a replay/fuzz report (summary, a timeline of checks, divergences and failures binned over the
step index, the cluster table, each divergence with both values side by side and the differing part
marked) and a gate result (verdict, criteria, segments, clusters, the shadow's counters over time).
Everything from the data is escaped; the output depends only on the input (no clock, no dict order).
The gate result also renders as Markdown, for sign-off documents and pull requests.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "anchor_at",
    "badge",
    "escape",
    "highlight_difference",
    "page",
    "render_report",
    "svg_open",
    "table",
]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d8dce3}
table{border-collapse:collapse;width:100%;background:#fff;margin:6px 0}
th,td{border:1px solid #d8dce3;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font:12px/1.4 ui-monospace,"DejaVu Sans Mono",monospace}
pre{margin:0;white-space:pre-wrap;word-break:break-all}
.badge{display:inline-block;padding:2px 10px;border-radius:4px;font-weight:700;color:#fff}
.PASS,.ACCEPT,.pass{background:#1f883d}.REVIEW,.EXTEND,.diverged{background:#bf8700}
.FAIL,.REJECT,.failed,.incomplete{background:#cf222e}.no-shadow{background:#6e7781}
.banner{background:#cf222e;color:#fff;padding:8px 12px;font-weight:700;margin:8px 0}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{background:#fff;border:1px solid #d8dce3;padding:8px 14px}
.card b{display:block;font-size:20px}mark{background:#ffd6d6;color:#82071e;border-radius:2px}
.side{display:grid;grid-template-columns:1fr 1fr;gap:6px}
.side>div{background:#fff;border:1px solid #d8dce3;padding:6px}
.muted{color:#656d76}svg{background:#fff;border:1px solid #d8dce3}
"""


def escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def page(title: str, body: Iterable[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width"><title>{escape(title)}</title>'
        f"<style>{_CSS}</style></head><body><main>\n" + "\n".join(body) + "\n</main></body></html>\n"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """``rows`` hold already-escaped cells (so cells may carry markup)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i in numeric else ''}>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def badge(status: str) -> str:
    """The class is the verdict's first word (``incomplete (bad input at x:3)`` is an ``incomplete``)."""
    kind = status.split(" ", 1)[0] if status else "unknown"
    return f'<span class="badge {escape(kind)}">{escape(status)}</span>'


def _wire(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def highlight_difference(authoritative: str, shadow: str, suffix: bool = True) -> tuple[str, str]:
    """Both texts escaped, with what lies between their common prefix and common suffix in ``<mark>``.

    For numbers pass ``suffix=False``: 1.25 against 1.5 should mark "25" and "5", not "2" and nothing.
    """
    limit = min(len(authoritative), len(shadow))
    prefix = 0
    while prefix < limit and authoritative[prefix] == shadow[prefix]:
        prefix += 1
    tail = 0
    while suffix and tail < limit - prefix and authoritative[-1 - tail] == shadow[-1 - tail]:
        tail += 1

    def mark(text: str) -> str:
        middle = text[prefix : len(text) - tail]
        marked = f"<mark>{escape(middle)}</mark>" if middle else ""
        return escape(text[:prefix]) + marked + escape(text[len(text) - tail :])

    return mark(authoritative), mark(shadow)


def svg_open(width: int, height: int, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'style="max-width:{width}px" role="img" aria-label="{escape(label)}">'
    )


def anchor_at(frac: float) -> str:
    return "start" if frac == 0 else "end" if frac == 1 else "middle"


def _bars(rows: Sequence[tuple[str, np.ndarray, str]], edges: np.ndarray, width: int = 1100) -> str:
    """One bar chart per row, sharing the x axis (step index)."""
    left, row_h, gap = 110, 70, 16
    height = len(rows) * (row_h + gap) + 28
    plot_w = width - left - 20
    out = [svg_open(width, height, "steps checked, divergences and failures per bin of steps")]
    bins = len(edges) - 1
    for index, (label, counts, colour) in enumerate(rows):
        top = 8 + index * (row_h + gap)
        peak = int(counts.max()) if counts.size and counts.max() > 0 else 0
        out.append(f'<text x="8" y="{top + 30}" font-size="12">{escape(label)}</text>')
        out.append(f'<text x="8" y="{top + 46}" font-size="11" fill="#656d76">max/bin {peak}</text>')
        out.append(
            f'<line x1="{left}" y1="{top + row_h}" x2="{left + plot_w}" y2="{top + row_h}" stroke="#999"/>'
        )
        for b in range(bins):
            if counts[b] <= 0:
                continue
            bar_h = max(1.0, row_h * float(counts[b]) / peak)
            x = left + plot_w * b / bins
            out.append(
                f'<rect x="{x:.1f}" y="{top + row_h - bar_h:.1f}" width="{max(1.0, plot_w / bins - 1):.1f}" '
                f'height="{bar_h:.1f}" fill="{colour}"><title>steps {edges[b]:.0f}-{edges[b + 1]:.0f}: '
                f"{int(counts[b])}</title></rect>"
            )
    axis_y = height - 8
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = left + plot_w * frac
        step = edges[0] + (edges[-1] - edges[0]) * frac
        anchor = anchor_at(frac)
        out.append(
            f'<text x="{x:.1f}" y="{axis_y}" font-size="11" text-anchor="{anchor}">step {step:.0f}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _timeline(report: Mapping[str, Any]) -> str:
    summary = report.get("summary", {})
    divergences = report.get("divergences", [])
    failures = report.get("failures", [])
    div_steps = np.array(
        [d.get("step", 0) for d in divergences if isinstance(d.get("step"), int)], dtype=float
    )
    fail_steps = np.array([f.get("step", 0) for f in failures if isinstance(f.get("step"), int)], dtype=float)
    last = max(
        [
            int(summary.get("steps", 0) or 0),
            *(int(s) + 1 for s in div_steps),
            *(int(s) + 1 for s in fail_steps),
            1,
        ]
    )
    bins = min(60, last)
    edges = np.linspace(0.0, float(last), bins + 1)
    # One check per step on each side: binning the step indices gives the checks per bin exactly.
    checks, _ = np.histogram(np.arange(last, dtype=float), bins=edges)
    div_counts, _ = np.histogram(div_steps, bins=edges)
    fail_counts, _ = np.histogram(fail_steps, bins=edges)
    shown = (
        ""
        if len(divergences) >= int(summary.get("divergences", 0) or 0)
        else " (divergences listed in the report)"
    )
    chart = _bars(
        [
            ("checks", checks, "#0969da"),
            ("divergences", div_counts, "#bf8700"),
            ("failures", fail_counts, "#cf222e"),
        ],
        edges,
    )
    return f"<h2>Timeline{escape(shown)}</h2>{chart}"


def _divergence(index: int, divergence: Mapping[str, Any]) -> str:
    where = f"step {divergence.get('step')} · slot {divergence.get('slot')} · {divergence.get('event_type')}"
    parts = [
        f"<h3>#{index} <code>{escape(divergence.get('signature', ''))}</code></h3>",
        f'<p class="muted">{escape(where)} · {escape(divergence.get("kind", ""))}</p>',
    ]
    for difference in divergence.get("differences", []) or []:
        values = (difference.get("authoritative"), difference.get("shadow"))
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        auth, shadow = highlight_difference(_wire(values[0]), _wire(values[1]), suffix=not numbers)
        parts.append(
            f"<p><code>{escape(difference.get('path', ''))}</code> "
            f'<span class="muted">rule {escape(difference.get("rule", "exact"))}</span></p>'
            f'<div class="side"><div><b>authoritative</b><pre>{auth}</pre></div>'
            f"<div><b>shadow</b><pre>{shadow}</pre></div></div>"
        )
    return "\n".join(parts)


def render_report(report: Mapping[str, Any], max_divergences: int = 200) -> str:
    """A replay or fuzz report (docs/formats.md) as one HTML page."""
    summary = report.get("summary", {})
    run = report.get("run", {})
    verdict = str(summary.get("verdict", "unknown"))
    cards = [
        ("events", summary.get("events", 0)),
        ("steps", summary.get("steps", 0)),
        ("divergences", summary.get("divergences", 0)),
        ("failures", summary.get("failures", 0)),
        ("invariant breaches", summary.get("invariant_breaches", 0)),
        ("known (triaged)", summary.get("known_divergences", 0) + summary.get("known_failures", 0)),
        ("clusters", summary.get("clusters", 0)),
        ("shadow restarts", summary.get("shadow_restarts", 0)),
    ]
    checks = summary.get("checks", {})
    body = [
        f"<h1>shadowdiff replay report {badge(verdict)}</h1>",
        f'<p class="muted">mode {escape(run.get("mode", "?"))}'
        f" · authoritative {escape(run.get('authoritative', '?'))} · shadow {escape(run.get('shadow', '?'))}"
        f" · corpora {escape(', '.join(map(str, run.get('corpora', []))))}</p>",
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{escape(v)}</b>{escape(k)}</div>' for k, v in cards)
        + "</div>",
        table(
            ["side", "transition", "invariants", "call"],
            (
                [
                    escape(side),
                    *(escape(checks.get(side, {}).get(k, 0)) for k in ("transition", "invariants", "call")),
                ]
                for side in ("authoritative", "shadow")
            ),
            numeric=(1, 2, 3),
        ),
        _timeline(report),
        "<h2>Clusters</h2>",
        table(
            ["signature", "kind", "event", "count", "first step", "last step"],
            (
                [
                    f"<code>{escape(c.get('signature'))}</code>",
                    escape(c.get("kind")),
                    escape(c.get("event_type")),
                ]
                + [escape(c.get(k)) for k in ("count", "first_step", "last_step")]
                for c in report.get("clusters", [])
            ),
            numeric=(3, 4, 5),
        )
        if report.get("clusters")
        else "<p>No clusters.</p>",
    ]
    known = (report.get("known") or {}).get("clusters") or []
    if known:
        body.append("<h2>Known (triaged) signatures</h2>")
        body.append(
            table(
                ["signature", "entry", "status", "explanation", "count"],
                (
                    [f"<code>{escape(c.get('signature'))}</code>", f"<code>{escape(c.get('pattern'))}</code>"]
                    + [escape(c.get(k)) for k in ("status", "explanation", "count")]
                    for c in known
                ),
                numeric=(4,),
            )
        )
    failures = report.get("failures", [])
    if failures:
        body.append("<h2>Shadow failures</h2>")
        body.append(
            table(
                ["step", "kind", "event", "message", "stderr tail"],
                (
                    [
                        *(escape(f.get(key)) for key in ("step", "kind", "event_type", "message")),
                        f"<pre>{escape(chr(10).join(map(str, f.get('stderr_tail', []) or [])))}</pre>",
                    ]
                    for f in failures[:max_divergences]
                ),
            )
        )
    divergences = report.get("divergences", [])
    if divergences:
        body.append(
            f"<h2>Divergences ({len(divergences)} listed of {escape(summary.get('divergences', '?'))})</h2>"
        )
        body += [_divergence(i + 1, d) for i, d in enumerate(divergences[:max_divergences])]
    for error in report.get("errors", []) or []:
        where, message = escape(error.get("where")), escape(error.get("message"))
        body.append(f'<p class="banner">input error at {where}: {message}</p>')
    return page(f"shadowdiff report: {verdict}", body)
