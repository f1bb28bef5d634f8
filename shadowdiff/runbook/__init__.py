"""The release decision: ``watch`` samples status endpoints, ``gate`` judges a window by the runbook's
criteria, ``evidence`` builds a hashed sign-off bundle. May import ``runtime`` and everything below it.
"""
