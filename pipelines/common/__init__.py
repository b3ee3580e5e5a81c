"""What every stage needs, written once: atomic contract files, input discovery, config hashing, metrics reading,
the FineForge home folder, process groups, and the stage interface the CLI, the demo and the flows share.

Modules import only the standard library, numpy-free helpers and fsspec, so that `trainer/` (and a GPU machine
without the data stack) can use them without pulling in datatrove, polars or Prefect.
"""
