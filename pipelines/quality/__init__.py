"""quality: a model-based quality filter you train yourself (fastText on word n-grams), as in DCLM and FineWeb-Edu.

Modules: `config` (training settings and the curate `quality:` section; imports only pydantic), `text` (the one
normalisation of training and scoring), `examples` (labelled texts from JSONL/Parquet or positive/negative
collections, stratified split), `backend` (the training-capable fastText module), `fit` (training in a fresh
interpreter, with retries of fastText's sporadic NaN), `model` (a model file with its
card, checked by sha256 before use, and scoring), `evaluate` (accuracy, AUC, the line-punctuation baseline),
`train` (`fineforge quality train`), `steps` (the curate stage's datatrove steps: score, then cut). `fineforge
quality score`, a curate run that only scores, is `pipelines.curate.score`: this package sits below
`pipelines.curate` and imports nothing from it. Import the module you need; this package imports nothing heavy.
"""
