"""Running FineForge as a service: the Prefect server, default folders, artifacts and the end-to-end demo.

Beside `flows.py` and outside the data package: `server` (the local Prefect server), `layout` (datasets and runs
under the FineForge home), `artifacts` (contract files turned into Prefect artifact rows and markdown), `demo`
and `demo_data` (`fineforge demo` and its built-in crawl). Stages themselves live in `pipelines/` and `trainer/`.
"""
