"""The commands: the only place that prints to the terminal or exits. Each command finds its domain,
builds the pieces of the layers below and maps errors to the documented exit codes.
"""
