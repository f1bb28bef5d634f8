"""The live mode: the tap inside the bot's process (standard library, msgpack and ``wire`` only) and the
sidecar that receives, records and checks its records, with its HTTP status endpoint. May import
``runtime`` and everything below it.
"""
