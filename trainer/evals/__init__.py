"""The early-signal evaluation suite: multiple-choice tasks scored as cloze completions (`fineforge eval suite`).

Modules: `tasks` (each dataset's record layout and its cloze formulation, citing lighteval), `data` (where a
task's file comes from: `--data-dir`, the `FINEFORGE_HOME/evals/` cache, a pinned download or a mirror), `suite`
(scoring: `acc`, `acc_norm`, chance level, the centred aggregate; `run_suite` for the CLI). HellaSwag is one task
of it; `fineforge eval hellaswag` is the suite on that one task. Import the modules themselves.
"""
