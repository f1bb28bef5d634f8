"""Shadows in other processes: the child-process transport and its framings, the protocol client
(``SubprocessReducer``) and the servers that put a Python reducer behind the protocol. May import
``core``, ``wire``, ``model``.
"""
