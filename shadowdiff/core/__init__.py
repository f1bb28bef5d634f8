"""The domain-free engine: the reducer and shadow interfaces, lockstep/free replay, comparison rules,
clustering, shrinking, triage. No printing, no exiting, no threads; the shadow's I/O stays behind the
``Shadow`` interface. May import ``wire`` and ``model``.
"""
