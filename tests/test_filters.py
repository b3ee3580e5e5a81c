"""The FineWeb filter stack: config defaults, stage order, drop reasons on crafted documents, clean documents kept
(built-in articles, and C4 documents where the shared corpora exist), language identification on the built-in
paragraphs in 19 languages, and language acceptance on lingua-sentences (issue 2, acceptance 4, corpora only)."""

from __future__ import annotations

import gzip
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from datatrove.data import Document
from datatrove.pipeline.writers import JsonlWriter

from orchestration.demo_data import demo_texts
from pipelines.curate.filters import FilterConfig, SortedLines, build_filter_steps, open_sorted_lines
from pipelines.curate.stages import FILTER_STAGES as STAGES
from tests.builtin_text import MULTILINGUAL
from tests.conftest import REPO_ROOT, SOURCES

PARAGRAPH = (
    "The committee met on Tuesday to review the budget for the coming year. Members agreed that the library "
    "should stay open in the evenings, and that the park needs new benches. The mayor said that the plan was "
    "fair to everyone who had written to the council. A final vote will be held next month, after the public "
    "has had time to comment on the proposal and to suggest changes to it."
)
SECOND = (
    "Local schools reported that attendance rose again this autumn, with most classes now back to their usual "
    "size. Teachers said they were glad to see the children return, although some buildings still need repairs "
    "before winter. Parents who want to help with the repairs can sign up at the front office of each school."
)
GOOD = PARAGRAPH + "\n" + SECOND


def _steps(tmp_path: Path, cfg: FilterConfig | None = None) -> dict:
    steps = build_filter_steps(cfg or FilterConfig(), lambda name: JsonlWriter(str(tmp_path / "rejects" / name)))
    return dict(steps)


def _run(step, docs: list[Document]) -> list[Document]:
    return list(step.run(iter(docs)))


def _rejects(tmp_path: Path, stage: str) -> list[dict]:
    rows = []
    for path in sorted((tmp_path / "rejects" / stage).glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            rows += [json.loads(line) for line in f]
    return rows


def test_defaults_are_fineweb_and_overridable():
    cfg = FilterConfig()
    assert cfg.language.threshold == 0.65 and cfg.language.languages == ["en"]
    assert cfg.c4_quality.filter_no_terminal_punct is False
    assert cfg.gopher_quality.min_doc_words == 50 and cfg.fineweb_quality.line_punct_thr == 0.12
    assert cfg.word_tokenizer == "regex"
    custom = FilterConfig.model_validate({"gopher_quality": {"min_doc_words": 10}, "language": {"languages": ["de"]}})
    steps = dict(build_filter_steps(custom, lambda name: None))
    assert steps["gopher_quality"].min_doc_words == 10
    assert steps["language_filter"].languages == ["de"]
    with pytest.raises(ValueError):
        FilterConfig.model_validate({"gopher_quality": {"min_doc_wrds": 10}})


def test_stage_order_and_disabling():
    names = [name for name, _ in build_filter_steps(FilterConfig(), lambda name: None)]
    assert names == list(STAGES)
    cfg = FilterConfig.model_validate({"url": {"enabled": False}, "c4_quality": {"enabled": False}})
    names = [name for name, _ in build_filter_steps(cfg, lambda name: None)]
    assert names == [s for s in STAGES if s not in ("url_filter", "c4_quality")]


def test_url_filter_offline_and_reasons(tmp_path):
    step = _steps(tmp_path)["url_filter"]
    assert step.tldextractor.suffix_list_urls == ()
    docs = [
        Document(text=GOOD, id="bad", metadata={"url": "https://example.com/free-bdsm-videos"}),
        Document(text=GOOD, id="ok", metadata={"url": "https://www.example.org/news/budget-meeting"}),
        Document(text=GOOD, id="no-url"),  # e.g. JSONL input without a url field: nothing to check
    ]
    assert [d.id for d in _run(step, docs)] == ["ok", "no-url"]
    assert step.stats["no_url"].total == 1
    rejects = _rejects(tmp_path, "url_filter")
    assert [(r["id"], r["metadata"]["filter_reason"]) for r in rejects] == [("bad", "hard_blacklisted")]
    assert step.stats["dropped_hard_blacklisted"].total == 1


def test_url_filter_blocks_listed_domains_and_subdomains_with_reason(tmp_path):
    """The integrated domain list (looked up in place, not loaded) drops its domains and their subdomains."""
    step = _steps(tmp_path)["url_filter"]
    docs = [
        Document(text=GOOD, id="domain", metadata={"url": "https://0-1avsex.com/page"}),
        Document(text=GOOD, id="ok", metadata={"url": "https://www.example.org/news/budget-meeting"}),
    ]
    assert [d.id for d in _run(step, docs)] == ["ok"]
    assert isinstance(step.block_listed_domains, SortedLines)
    assert [r["metadata"]["filter_reason"] for r in _rejects(tmp_path, "url_filter")] == ["domain"]


def test_sorted_lines_answer_as_the_set_of_the_lines(tmp_path):
    """Membership through the memory-mapped file equals membership in the set datatrove would build, for every
    line, its neighbours and edge cases; files that datatrove would read differently are refused."""
    lines = sorted({"a.com", "b.org", "ba.net", "bb.io", "c.de", "zz.top", "x-y.example", "0-1.com"})
    path = tmp_path / "domains"
    path.write_text("".join(line + "\n" for line in lines))
    in_place = open_sorted_lines(path, {"extra.com"})
    probes = [*lines, *(x + "x" for x in lines), *(x[:-1] for x in lines), "", "0", "zzz", "extra.com", "b"]
    assert [p in in_place for p in probes] == [p in {*lines, "extra.com"} for p in probes]
    assert [p in pickle.loads(pickle.dumps(in_place)) for p in probes] == [p in in_place for p in probes]
    for bad in ("b.org\na.com\n", "a.com\n#c.com\n", "a.com \nb.com\n", "a.com\n\nb.com\n"):
        path.write_text(bad)
        assert open_sorted_lines(path, set()) is None


def test_language_filter_reasons(tmp_path):
    step = _steps(tmp_path)["language_filter"]
    german = "Der Ausschuss hat am Dienstag den Haushalt für das kommende Jahr geprüft und beschlossen."
    docs = [Document(text=german, id="de"), Document(text=GOOD, id="en"), Document(text="12345 678", id="num")]
    kept = _run(step, docs)
    assert [d.id for d in kept] == ["en"]
    assert kept[0].metadata["language"] == "en" and kept[0].metadata["language_score"] > 0.65
    reasons = {r["id"]: r["metadata"]["filter_reason"] for r in _rejects(tmp_path, "language_filter")}
    assert reasons["de"] == "wrong_language"
    assert reasons["num"] in ("wrong_language", "low_language_score")


CRAFTED = {
    "gopher_repetition": [
        ("\n".join(["Buy cheap shoes online today at our store."] * 12 + [PARAGRAPH]), "dup_line_frac"),
        (PARAGRAPH + " " + " ".join(["click here"] * 60), "top_2_gram"),
        (" ".join([PARAGRAPH, PARAGRAPH, SECOND]), "duplicated_5_n_grams"),
    ],
    "gopher_quality": [
        ("Too short to be a real page.", "gopher_short_doc"),
        (" ".join(["#tag"] * 30) + " " + PARAGRAPH, "gopher_too_many_hashes"),
        ("\n".join(f"- item number {i} of the list and the rest" for i in range(60)), "gopher_too_many_bullets"),
    ],
    "c4_quality": [
        (PARAGRAPH + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit.", "lorem_ipsum"),
        (PARAGRAPH + "\nfunction f() { return the value of x; }", "curly_bracket"),
        ("One sentence only here. And two here.\nshort line", "too_few_sentences"),
    ],
    "fineweb_quality": [
        ("\n".join(f"menu entry number {i} without an end" for i in range(20)), "line_punct_ratio"),
        ("\n".join(["Home.", "About.", "Contact.", "News.", PARAGRAPH]), "short_line_ratio"),
        ("\n".join([PARAGRAPH, "Shared line that repeats here.", "Shared line that repeats here."]), "char_dup_ratio"),
    ],
}


@pytest.mark.parametrize("stage", list(CRAFTED))
def test_heuristic_filters_drop_crafted_docs_with_reason(tmp_path, stage):
    step = _steps(tmp_path)[stage]
    docs = [Document(text=text, id=f"bad{i}") for i, (text, _) in enumerate(CRAFTED[stage])]
    docs.append(Document(text=GOOD, id="good"))
    assert [d.id for d in _run(step, docs)] == ["good"]
    got = {r["id"]: r["metadata"]["filter_reason"] for r in _rejects(tmp_path, stage)}
    assert got == {f"bad{i}": reason for i, (_, reason) in enumerate(CRAFTED[stage])}
    for _, reason in CRAFTED[stage]:
        assert step.stats[f"dropped_{reason}"].total >= 1


def _clean_documents(source: str, request: pytest.FixtureRequest) -> list[Document]:
    """Clean English web text: built-in demo articles, or the shared C4 samples."""
    if source == "builtin":
        texts = demo_texts(40, seed=11)
        return [
            Document(text=t, id=str(i), metadata={"url": f"https://news.example.org/{i}"}) for i, t in enumerate(texts)
        ]
    docs = []
    for path in sorted((request.getfixturevalue("corpora") / "c4-samples").glob("c4-sample.*.json.gz")):
        with gzip.open(path, "rt") as f:
            for line in f:
                rec = json.loads(line)
                docs.append(Document(text=rec["text"], id=str(len(docs)), metadata={"url": rec["url"]}))
    return docs


@pytest.mark.parametrize("source", SOURCES)
def test_real_clean_documents_are_kept(source, request, tmp_path):
    """Clean English documents: URL and language keep all; each heuristic filter and the whole stack keep every
    one of the longer ones (short C4 pages may legitimately fail Gopher's 50-word or C4's 5-sentence minimum)."""
    docs = _clean_documents(source, request)
    assert len(docs) >= 20
    steps = _steps(tmp_path)
    long_ids = [d.id for d in docs if len(d.text.split()) >= 150]
    assert len(long_ids) >= 10
    for stage in STAGES:
        kept = _run(steps[stage], [Document(text=d.text, id=d.id, metadata=dict(d.metadata)) for d in docs])
        expected = [d.id for d in docs] if stage in ("url_filter", "language_filter") else long_ids
        assert set(expected) <= {d.id for d in kept}, stage
    survivors = [d for d in docs if d.id in long_ids]
    for stage in STAGES:
        survivors = _run(steps[stage], survivors)
    assert [d.id for d in survivors] == long_ids


def test_language_filter_names_each_builtin_language(tmp_path):
    """The paragraphs in 19 languages and 10 scripts are each dropped as `wrong_language` under the default
    (English) setting, and each kept, with its own code, when its language is the one asked for."""
    step = _steps(tmp_path)["language_filter"]
    docs = [Document(text=text, id=lang) for lang, text in MULTILINGUAL.items()]
    assert _run(step, docs) == []
    reasons = {r["id"]: r["metadata"]["filter_reason"] for r in _rejects(tmp_path, "language_filter")}
    assert reasons == dict.fromkeys(MULTILINGUAL, "wrong_language")
    for lang, text in MULTILINGUAL.items():
        cfg = FilterConfig.model_validate({"language": {"languages": [lang]}})
        only = dict(build_filter_steps(cfg, lambda name: None))["language_filter"]
        kept = _run(only, [Document(text=text, id=lang)])
        assert [d.metadata["language"] for d in kept] == [lang]


def _lingua_docs(corpora: Path, lang: str, per_doc: int = 20) -> list[str]:
    with gzip.open(corpora / "lingua-sentences" / "sentences" / f"{lang}.txt.gz", "rt") as f:
        sents = [s.strip() for s in f if s.strip()]
    return [" ".join(sents[i : i + per_doc]) for i in range(0, len(sents) - per_doc + 1, per_doc)]


def test_language_acceptance_lingua(corpora):
    """Acceptance 4: documents of 20 sentences: >= 95% of non-English dropped, >= 98% of English kept."""
    step = dict(build_filter_steps(FilterConfig(), lambda name: None))["language_filter"]
    langs = sorted(p.name.split(".")[0] for p in (corpora / "lingua-sentences" / "sentences").glob("*.txt.gz"))
    assert "en" in langs and len(langs) > 50
    kept_en = dropped_other = total_other = 0
    for lang in langs:
        texts = _lingua_docs(corpora, lang)
        kept = len(_run(step, [Document(text=t, id=str(i)) for i, t in enumerate(texts)]))
        if lang == "en":
            kept_en, total_en = kept, len(texts)
        else:
            dropped_other += len(texts) - kept
            total_other += len(texts)
    assert kept_en >= 0.98 * total_en, (kept_en, total_en)
    assert dropped_other >= 0.95 * total_other, (dropped_other, total_other)


def test_datatrove_dependency_checks_look_distributions_up_directly():
    """Importing pipelines.curate swaps datatrove's scan of every installed distribution's metadata for a direct
    look-up; a missing distribution is still refused and an installed one still accepted."""
    from datatrove.utils import _import_utils

    from pipelines.curate import startup

    assert _import_utils._is_distribution_available is startup.find_distribution
    _import_utils.check_required_dependencies("step", ["warcio", ("fasttext", "fasttext-numpy2-wheel")])
    with pytest.raises(ImportError, match="no-such-distribution"):
        _import_utils.check_required_dependencies("step", [("warcio", "no-such-distribution")])


def test_importing_curate_never_reads_every_distributions_metadata():
    """The swap happens before the package's own module-level datatrove objects (dedup's `HashConfig`) check their
    dependencies: importing pipelines.curate in a fresh process reads the metadata of a few distributions, not all."""
    code = (
        "import importlib.metadata as m\n"
        "reads = []\n"
        "real = m.PathDistribution.metadata\n"
        "m.PathDistribution.metadata = property(lambda d: reads.append(1) or real.fget(d))\n"
        "import pipelines.curate\n"
        "import pipelines.curate.dedup\n"
        "print(len(reads), len(list(m.distributions())))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    reads, installed = map(int, done.stdout.split())
    assert installed > 50 and reads < 10, (reads, installed)


def test_loguru_handlers_reuse_the_library_folders(monkeypatch: pytest.MonkeyPatch):
    """Importing pipelines.curate makes loguru work out its library folders once per process, not once per handler
    (datatrove adds three per task); the folders are those loguru itself finds."""
    import sysconfig

    from loguru import logger
    from loguru._better_exceptions import ExceptionFormatter

    from pipelines.curate import startup

    assert ExceptionFormatter._get_lib_dirs() == startup.library_folders.__wrapped__()
    calls = []
    real = sysconfig.get_path
    monkeypatch.setattr(sysconfig, "get_path", lambda *a, **k: calls.append(a) or real(*a, **k))
    for _ in range(3):
        logger.remove(logger.add(lambda message: None))
    assert calls == []
