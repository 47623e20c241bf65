"""The web benchmark's applications (see ``benchmarks/web/README.md``)."""
