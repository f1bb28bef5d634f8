"""Formats on the wire and on disk: msgpack/JSON encodings, the canonical state delta, identity deltas of
frozen dataclasses, and the format facts (log tag, header, protocol version). Standard library and
msgpack only, so the live tap inside the bot can share it. May import ``model``.
"""
