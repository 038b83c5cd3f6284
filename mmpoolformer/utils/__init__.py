"""Errors, command-line helpers of the tools, and reading training logs."""
