"""HTML and JUnit reports: escaped, self-contained, deterministic, and rendered by a real browser."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shadowdiff.reporting.html import highlight_difference, render_report
from shadowdiff.reporting.junit import junit_xml, render_junit
from shadowdiff.runbook.gate import judge
from shadowdiff.runbook.render import render_gate
from shadowdiff.runbook.watch import format_ts

PRICE = "transition.state|FillEvent|orders[*].price"
EVIL = "<script>alert('x')</script>"


def divergence(step: int, authoritative: Any, shadow: Any, path: str = "orders[1].price") -> dict[str, Any]:
    return {
        "kind": "transition.state",
        "signature": PRICE,
        "step": step,
        "seq": step,
        "slot": "slot-0",
        "event": {"type": "FillEvent", "payload": {}},
        "event_type": "FillEvent",
        "differences": [{"path": path, "authoritative": authoritative, "shadow": shadow, "rule": "exact"}],
    }


def report(divergences: list[dict[str, Any]], steps: int = 100) -> dict[str, Any]:
    clusters = (
        [
            {
                "signature": PRICE,
                "kind": "transition.state",
                "event_type": "FillEvent",
                "count": len(divergences),
            }
        ]
        if divergences
        else []
    )
    for cluster in clusters:
        cluster |= {"first_step": divergences[0]["step"], "last_step": divergences[-1]["step"]}
    return {
        "shadowdiff": {"version": "0.1.0", "report": 1},
        "run": {
            "mode": "lockstep",
            "codec": "msgpack",
            "authoritative": "reference",
            "shadow": EVIL,
            "corpora": [],
        },
        "summary": {
            "events": steps,
            "steps": steps,
            "calls": 0,
            "checks": {"authoritative": {"transition": steps}, "shadow": {"transition": steps}},
            "divergences": len(divergences),
            "failures": 0,
            "failures_by_kind": {},
            "clusters": len(clusters),
            "verdict": "diverged" if divergences else "pass",
        },
        "clusters": clusters,
        "divergences": divergences,
        "failures": [],
        "invariant_breaches": [],
        "errors": [],
    }


def test_highlight_marks_only_what_differs() -> None:
    assert highlight_difference("0.12078", "0.120816") == ("0.120<mark>78</mark>", "0.120<mark>816</mark>")
    q = "&quot;"
    expected = (f"[{q}a{q},{q}b{q}]", f"[{q}a{q},{q}<mark>c{q},{q}</mark>b{q}]")
    assert highlight_difference('["a","b"]', '["a","c","b"]') == expected
    assert highlight_difference("1.25", "1.5", suffix=False) == ("1.<mark>25</mark>", "1.<mark>5</mark>")
    assert highlight_difference("same", "same") == ("same", "same")
    assert highlight_difference("<b>", "<i>") == ("&lt;<mark>b</mark>&gt;", "&lt;<mark>i</mark>&gt;")


def test_report_page_has_summary_timeline_clusters_and_escaped_values() -> None:
    page = render_report(report([divergence(5, 1.25, 1.5), divergence(7, EVIL, "ok"), divergence(93, 1, 2)]))
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing to fetch
    assert 'class="badge diverged"' in page
    assert "1.<mark>25</mark>" in page and "1.<mark>5</mark>" in page
    assert f"<code>{PRICE}</code>" in page
    # 60 bins over 100 steps, numpy-binned: steps 5 and 7 fall in different bins, 93 in its own.
    titles = re.findall(r"<title>steps ([\d]+)-([\d]+): (\d+)</title>", page)
    divergence_bins = titles[60:]
    assert [(int(a), int(b), int(n)) for a, b, n in divergence_bins] == [(5, 7, 1), (7, 8, 1), (92, 93, 1)]
    assert sum(int(n) for _, _, n in titles[:60]) == 100  # every step checked, once


def test_report_page_is_deterministic_and_handles_an_empty_run() -> None:
    assert render_report(report([divergence(1, 1, 2)])) == render_report(report([divergence(1, 1, 2)]))
    page = render_report(report([], steps=0))
    assert 'class="badge pass"' in page and "No clusters." in page


def window(minutes: int, reset_at: int) -> list[dict[str, Any]]:
    rows = []
    for minute in range(minutes + 1):
        checks = 10 * (minute if minute < reset_at else minute - reset_at)
        rows.append(
            {
                "ts": format_ts(1_790_000_000 + 60 * minute),
                "seq": minute + 1,
                "state_machine_shadow": {
                    "enabled": True,
                    "executable_available": True,
                    "transition_checks": checks,
                    "total_divergences": 0,
                    "shadow_failures": 0,
                },
            }
        )
    rows[30] = {"ts": rows[30]["ts"], "seq": 31, "gap": True, "error": EVIL}
    return rows


def test_gate_page_plots_counters_with_a_break_at_the_reset() -> None:
    page = render_gate(judge(window(120, reset_at=60)))
    assert 'class="badge EXTEND"' in page  # two hours of a 48 h window
    assert page.count("<polyline") == 2 + 2 + 2  # three counters, each split at the reset
    assert "<td>1-60</td>" in page and "<td>61-121</td>" in page  # the segments table
    assert "<script" not in page


def test_junit_one_case_per_cluster_and_a_pass_when_none() -> None:
    second = dict(divergence(9, 1, 2), signature="transition.actions|TimerTick|actions")
    data = report([divergence(3, 1, 2)])
    data["clusters"].insert(0, {"signature": "z|TimerTick|x", "kind": "transition.actions", "count": 0})
    data["clusters"].append({"signature": second["signature"], "kind": "transition.actions", "count": 4})
    root = ET.fromstring(junit_xml(data))
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == sorted([PRICE, "z|TimerTick|x", second["signature"]])
    assert [c.find("failure") is not None for c in cases] == [True, True, False]
    assert (suite.get("tests"), suite.get("failures")) == ("3", "2")
    clean = ET.fromstring(render_junit(report([])))
    (case,) = clean.iter("testcase")
    assert case.find("failure") is None and case.get("name") == "no divergences in 100 steps"


def test_junit_counts_failures_no_cluster_names() -> None:
    data = report([])
    data["summary"] |= {"verdict": "failed", "failures_by_kind": {"crash": 2}}
    (case,) = ET.fromstring(junit_xml(data)).iter("testcase")
    failure = case.find("failure")
    assert failure is not None and failure.get("message") == "2 shadow crash failure(s)"


def png_pixels_vary(path: Path) -> tuple[int, int, float]:
    """Decode the PNG (zlib, no imaging library): width, height, and the share of non-zero filtered bytes.

    A blank page compresses to rows that are all "same as the row above" (zero bytes after filtering);
    a rendered report has text, tables and plots, so a fair share of its filtered bytes are not zero.
    """
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind, body = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    channels = {2: 3, 6: 4, 0: 1, 4: 2}[colour]
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8)
    assert depth == 8 and raw.size == height * (1 + width * channels)
    pixels = raw.reshape(height, 1 + width * channels)[:, 1:]
    return width, height, float(np.count_nonzero(pixels)) / pixels.size


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = chromium()
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs Debian's chromium to check the HTML report: apt-get install -y chromium")
        pytest.skip("chromium not installed (apt-get install -y chromium); CI=true makes this a failure")
    steps = 3000
    page = tmp_path / "report.html"
    page.write_text(
        render_report(report([divergence(s, 0.12078, 0.120816) for s in range(6, steps, 37)], steps))
    )
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
    flags += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
    flags += [f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "report.png"
    url = page.as_uri()
    done = subprocess.run(
        [browser, *flags, f"--screenshot={shot}", "--window-size=1280,2000", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists(), done.stderr[-2000:]
    width, height, busy = png_pixels_vary(shot)
    assert (width, height) == (1280, 2000)
    assert busy > 0.01, f"the screenshot looks blank ({busy:.4%} non-zero filtered bytes)"
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert "shadowdiff replay report" in dom.stdout and "0.120<mark>816</mark>" in dom.stdout
    saved = os.environ.get("SHADOWDIFF_SAVE_SCREENSHOT")
    if saved:
        shutil.copyfile(shot, saved)


def test_png_check_tells_a_blank_page_from_a_report(tmp_path: Path) -> None:
    width, height = 64, 32
    rows = b"".join(b"\x02" + b"\x00" * (width * 3) for _ in range(height))  # "Up" filter, nothing changes
    blank = tmp_path / "blank.png"
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    blank.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    assert png_pixels_vary(blank) == (64, 32, 0.0)
