"""Reports of a replay and of the gate: text, JSON, HTML and JUnit. May import ``runbook`` and
everything below it; never prints or exits.
"""
