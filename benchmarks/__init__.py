"""Benchmarks for atlascloud-mcp: start-up, per-call overhead, time to image, load, upload, preview.

Run them all with ``uv run python -m benchmarks``; the table is printed and written to docs/benchmarks.md.
"""
