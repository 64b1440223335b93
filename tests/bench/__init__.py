"""Benchmark of the web and worker processes against a bare Starlette baseline, on loopback."""
