"""The curate stages in the order documents pass them: the one list every part of curate and the report uses.

`read` and `extract` turn records into documents; the filters run in FineWeb's order in the same pass, then
`decontaminate` (documents sharing an n-gram with an eval set); the dedup stages run afterwards over the
survivors of every task, and `pii` (FineWeb's last step) in the same pass as the last dedup step.
`summary.json` lists one entry per stage in this order, disabled stages included (they pass every document on).
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
SCREEN_STAGES = ("decontaminate",)  # after the filters, in the first pass
DEDUP_STAGES = ("exact_dedup", "minhash_dedup")
OUTPUT_STAGES = ("pii",)  # after dedup, in the pass that writes data/
FIRST_PASS = READ_STAGES + FILTER_STAGES + SCREEN_STAGES  # one datatrove pipeline: read, extract, filter, screen
STAGES = FIRST_PASS + DEDUP_STAGES + OUTPUT_STAGES
