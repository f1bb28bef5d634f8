"""JUnit XML from a replay or fuzz report, for CI systems that draw test results.

One test case per cluster (a divergence signature is one "test" that fails with its count), so a CI page
lists what diverged rather than one opaque red run. Shadow failures of a kind no cluster names get a
test case of their own, and a clean report still has one passing case, so "0 tests" never reads as green.
The output depends only on the report (clusters sorted by signature, no timestamps).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

__all__ = ["junit_xml", "render_junit"]


def _case(suite: ET.Element, classname: str, name: str, failure: tuple[str, str] | None) -> None:
    case = ET.SubElement(suite, "testcase", {"classname": classname, "name": name, "time": "0"})
    if failure is not None:
        message, text = failure
        element = ET.SubElement(case, "failure", {"message": message, "type": classname})
        element.text = text


def render_junit(report: Mapping[str, Any], suite_name: str = "shadowdiff") -> str:
    """The report as a ``<testsuites>`` document (UTF-8 text with an XML declaration)."""
    summary = report.get("summary", {}) or {}
    clusters = sorted(report.get("clusters", []) or [], key=lambda c: str(c.get("signature", "")))
    root = ET.Element("testsuites", {"name": suite_name})
    suite = ET.SubElement(root, "testsuite", {"name": suite_name})
    verdict = str(summary.get("verdict", "pass"))
    properties = ET.SubElement(suite, "properties")  # the same verdict line as the text and JSON reports
    ET.SubElement(properties, "property", {"name": "verdict", "value": verdict})
    failed = 0
    for cluster in clusters:
        count = int(cluster.get("count", 0) or 0)
        signature = str(cluster.get("signature", "unsigned"))
        failure = None
        if count > 0:
            failed += 1
            message = f"{count} x {signature}"
            text = (
                f"kind: {cluster.get('kind')}\nevent: {cluster.get('event_type')}\n"
                f"steps: {cluster.get('first_step')}..{cluster.get('last_step')}\n"
                "reproduce: shadowdiff shrink on the findings file, then replay the scenario it writes"
            )
            failure = (message, text)
        _case(suite, f"shadowdiff.{cluster.get('kind', 'divergence')}", signature, failure)
    named = {str(c.get("kind")) for c in clusters}
    for kind, count in sorted((summary.get("failures_by_kind", {}) or {}).items()):
        if kind not in named and int(count or 0) > 0:
            failed += 1
            _case(
                suite,
                f"shadowdiff.failure.{kind}",
                f"shadow {kind}",
                (f"{count} shadow {kind} failure(s)", ""),
            )
    for error in report.get("errors", []) or []:
        failed += 1
        where = str(error.get("where", "?"))
        _case(suite, "shadowdiff.input", f"input {where}",
              (str(error.get("message", "bad input")), f"{where}\nverdict: {verdict}"))  # fmt: skip
    if len(suite) == 1:  # only the properties: every report has at least one test case
        checks = summary.get("steps", 0)
        _case(
            suite,
            "shadowdiff.replay",
            f"no divergences in {checks} steps",
            None if verdict == "pass" else (verdict, ""),
        )
        failed += verdict != "pass"
    skipped = 0
    for known in (report.get("known", {}) or {}).get("clusters", []) or []:
        skipped += 1  # a triaged signature: a skipped case carrying its explanation
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": f"shadowdiff.known.{known.get('kind')}",
                "name": str(known.get("signature")),
                "time": "0",
            },
        )
        note = f"known ({known.get('status')}), {known.get('count')} x: {known.get('explanation')}"
        ET.SubElement(case, "skipped", {"message": note})
    tests = len(suite) - 1  # the properties are not a test case
    suite.set("tests", str(tests))
    suite.set("failures", str(failed))
    suite.set("errors", "0")
    suite.set("skipped", str(skipped))
    root.set("tests", str(tests))
    root.set("failures", str(failed))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


# The name cli.py's --junit imports.
junit_xml = render_junit
