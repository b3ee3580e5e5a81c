"""Proxy-model ablations: does a curation choice make a better model? (`fineforge ablate`, the `ablation` flow)

Modules: `spec` (the arguments and the one training recipe all runs share), `evalsets` (fixed evaluation sets,
tokenized once; bits per byte and acc_norm; overlap by normalised text hash), `job` (`Ablation`: curate, tokenize
and train every variant through the stage interface, score every run; `run_ablation` for the CLI), `results`
(means, spreads and the verdict rule), `plan` (the evidence planner: which evaluations carry signal, seeds or tokens
needed), `scales` (the proxy scales of `--scale`), `report` (the comparison page). The early-signal suite
(`--eval-suite`) comes from `trainer.evals`; its tasks become evaluation sets like any other.

This is the one `pipelines` package that sits above `trainer`: it runs training runs and scores checkpoints, so
it imports `trainer` as `orchestration` does; nothing below it imports it. Import the modules themselves: this
package's `__init__` stays empty so that `flows.py` can name `spec.AblationSpec` without loading torch or datatrove.
"""
