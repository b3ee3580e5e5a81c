"""The curate stages in the order documents pass them: the one list every part of curate and the report uses.

`read` and `extract` turn records into documents; the filters run in FineWeb's order in the same pass; `quality`
(off by default) scores the survivors with a trained classifier in a pass of its own and cuts in another, so a new
threshold reuses the scores; `decontaminate` (off by default) drops or flags documents that share an n-gram with an
eval set; `prior_dedup` (off unless `dedup_against` names earlier runs) drops what earlier runs kept; the dedup
stages run afterwards over the survivors of every task, and `pii` (FineWeb's last step) in the
same pass as the last dedup step. `summary.json` lists one entry per stage in this order, disabled stages included
(they pass every document on).

Words (docs/architecture.md, "Glossary"): these are curate's gates, where documents are counted in and out and
dropped with a reason; their names say `stage` in code and on disk (summary.json `stages`, `rejects/<stage>/`),
where the glossary's "stage" is curate, tokenize or train. A step is a resumable unit of work
(`pipelines.curate.job.CURATE_STEPS`), and each row there names the gates it counts; a pass is one datatrove
pipeline over all tasks (`FIRST_PASS` is the filter step's one pass).
"""

READ_STAGES = ("read", "extract")
FILTER_STAGES = (
    "url_filter",
    "language_filter",
    "gopher_repetition",
    "gopher_quality",
    "c4_quality",
    "fineweb_quality",
)
QUALITY_STAGES = ("quality",)
SCREEN_STAGES = ("decontaminate",)  # after the quality cut, in a pass of its own
PRIOR_STAGES = ("prior_dedup",)  # --dedup-against: earlier runs' kept documents, in the dedup step's first pass
DEDUP_STAGES = ("exact_dedup", "minhash_dedup")
OUTPUT_STAGES = ("pii",)  # after dedup, in the pass that writes data/
FIRST_PASS = READ_STAGES + FILTER_STAGES  # one datatrove pipeline: read, extract, filter
STAGES = FIRST_PASS + QUALITY_STAGES + SCREEN_STAGES + PRIOR_STAGES + DEDUP_STAGES + OUTPUT_STAGES
