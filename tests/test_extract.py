"""The extraction engine option: resiliparse runs the demo crawl to the same verdicts as trafilatura.

The demo crawl's ground truth names every planted case (boilerplate around articles, boilerplate-only pages,
spam, foreign pages, copies); curate with `extract.engine: resiliparse` must keep exactly the good pages,
drop every planted case at its stage, and leave none of the planted boilerplate phrases in the data. Real pages
(trafilatura-eval) check that both engines return main text through the stage's sandbox.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from datatrove.data import Document

from orchestration.demo_data import write_demo_crawl
from pipelines.curate import CurateConfig, run_curate
from pipelines.curate.extract import (
    ExtractConfig,
    HtmlExtractor,
    LanguagePrecheck,
    LanguageSkip,
    ResiliparseEngine,
    ResiliparseOptions,
    TrafilaturaEngine,
    make_engine,
    trim_tail,
)
from pipelines.curate.read import decode_html
from tests.builtin_text import MULTILINGUAL
from tests.conftest import REPO_ROOT
from tests.test_curate import assert_accounting
from tests.test_demo_data import test_curate_finds_every_planted_case as check_planted_cases


@pytest.fixture(scope="module")
def resiliparse_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    root = tmp_path_factory.mktemp("demo-resiliparse")
    truth = write_demo_crawl(root)
    config = CurateConfig.model_validate({"extract": {"engine": "resiliparse"}})
    summary = run_curate(config, [str(root)], root / "curated")
    return root, truth, summary


def test_resiliparse_finds_every_planted_case(resiliparse_demo: tuple[Path, dict, dict]) -> None:
    check_planted_cases(resiliparse_demo)
    summary = resiliparse_demo[2]
    extract = next(s for s in summary["stages"] if s["name"] == "extract")
    assert extract["docs_in"] == extract["docs_out"] + sum(extract["dropped"].values())


def test_trim_tail_cuts_trailing_boilerplate_only() -> None:
    article = "A first line of the story that ends well.\nAnd the last real sentence of the article here."
    assert trim_tail(article + "\nShare this\nRelated: Ten tips\n© 2024", 5) == article
    assert trim_tail(article, 5) == article
    assert trim_tail("Home\nNews\nAbout", 5) == "Home\nNews\nAbout"  # never trims everything
    assert trim_tail(article + "\nShare", 0) == article + "\nShare"


def test_engine_choice_and_options() -> None:
    assert isinstance(make_engine(ExtractConfig()), TrafilaturaEngine)
    engine = make_engine(ExtractConfig(engine="resiliparse", resiliparse={"trim_tail_min_words": 0}))
    assert isinstance(engine, ResiliparseEngine) and engine.options.trim_tail_min_words == 0
    with pytest.raises(ValueError, match="engine"):
        CurateConfig.model_validate({"extract": {"engine": "boilerpipe"}})
    with pytest.raises(ValueError, match="main_contnt"):
        CurateConfig.model_validate({"extract": {"resiliparse": {"main_contnt": True}}})
    html = "<html><body><nav>Home News</nav><article><p>" + "Real words here. " * 20 + "</p></article></body></html>"
    everything = ResiliparseEngine(ResiliparseOptions(main_content=False))(html)
    assert "Home News" in everything and "Home News" not in ResiliparseEngine()(html)


def test_resiliparse_dependency_is_checked_up_front(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "resiliparse.extract.html2text", None)
    with pytest.raises(RuntimeError, match="resiliparse"):
        HtmlExtractor(ResiliparseEngine())


def test_both_engines_extract_real_pages_in_the_sandbox(corpora: Path) -> None:
    pages = sorted((corpora / "trafilatura-eval" / "html" / "eval").glob("*.html.gz"))[:12]
    for engine in (TrafilaturaEngine(), ResiliparseEngine()):
        step = HtmlExtractor(engine, timeout=30)
        docs = [
            Document(text=decode_html(gzip.decompress(p.read_bytes())), id=p.name, metadata={"content_type": "html"})
            for p in pages
        ]
        out = list(step.run(iter(docs)))
        assert len(out) >= 10, engine.name
        assert all("<div" not in doc.text and len(doc.text.split()) > 20 for doc in out), engine.name


def test_configs_from_before_engines_still_load(tmp_path) -> None:
    """`extract.favour_precision` (the key before engines) means trafilatura's option; both at once is an error."""
    from pipelines.curate import load_config

    old = tmp_path / "old.yaml"
    old.write_text("extract:\n  favour_precision: false\n  deduplicate: true\n")
    assert load_config(old).extract.trafilatura.favour_precision is False
    both = tmp_path / "both.yaml"
    both.write_text("extract:\n  favour_precision: false\n  trafilatura:\n    favour_precision: true\n")
    with pytest.raises(ValueError, match="both set"):
        load_config(both)


# A stage process as a Prefect flow run sets it up: a SIGTERM handler that raises (Prefect's raises
# TerminationSignal, a BaseException) and stdlib logging to stderr at WARNING; then the extract step on a real
# page and on one that is not HTML at all.
QUIET_SANDBOX_SCRIPT = """
import logging, signal, sys
class Terminated(BaseException):
    pass
def raise_terminated(signum, frame):
    raise Terminated(signum)
signal.signal(signal.SIGTERM, raise_terminated)
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
from datatrove.data import Document
from pipelines.curate.extract import HtmlExtractor
page = "<html><body><article><p>" + "A real sentence of the article, long enough to keep. " * 12 + "</p></article>"
docs = [Document(text=page, id="page", metadata={"content_type": "html"}),
        Document(text="   ", id="blank", metadata={"content_type": "html"})]
print("kept", [doc.id for doc in HtmlExtractor().run(iter(docs))])
"""


def test_extraction_child_is_quiet_under_a_raising_sigterm_handler() -> None:
    """The sandbox child forked from a flow run ends without a traceback, and trafilatura's "Document is empty"
    about a page that is not HTML reaches datatrove's log as a warning, not stderr as an ERROR."""
    proc = subprocess.run([sys.executable, "-c", QUIET_SANDBOX_SCRIPT], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0 and "kept ['page']" in proc.stdout, proc.stderr
    assert "Traceback" not in proc.stderr and "Terminated" not in proc.stderr, proc.stderr
    empty = [line for line in proc.stderr.splitlines() if "Document is empty" in line]
    assert empty and all("| WARNING" in line for line in empty), proc.stderr
    assert "ERROR" not in proc.stderr, proc.stderr


def _article_page(text: str, lang: str) -> str:
    """A page with navigation around one article of `text`, as a crawl's HTML."""
    return (
        f'<html lang="{lang}"><body><nav>Home News Sport</nav><article><h1>Title</h1>'
        + "".join(f"<p>{sentence}.</p>" for sentence in text.split(". "))
        + "</article><footer>Contact</footer></body></html>"
    )


ENGLISH_ARTICLE = (
    "The city library reopens on Saturday after two years of building work. Visitors will find a brighter reading "
    "room, a larger children's section and longer opening hours. The mayor thanked the builders who finished on "
    "time despite the cold winter, and the librarians who kept a small lending service going in the town hall"
)


@pytest.mark.parametrize("engine_name", ["trafilatura", "resiliparse"])
def test_language_precheck_skips_only_pages_clearly_in_no_accepted_language(engine_name: str) -> None:
    cfg = ExtractConfig(engine=engine_name)
    engine, plain = make_engine(cfg, ["en"], 0.65), make_engine(cfg)
    assert isinstance(engine, LanguagePrecheck) and not isinstance(plain, LanguagePrecheck)
    english = _article_page(ENGLISH_ARTICLE, "en")
    assert engine(english) == plain(english)  # an accepted language: the engine's own text
    for lang in ("de", "fr", "ru", "ar", "hi", "th"):
        verdict = engine(_article_page(MULTILINGUAL[lang], lang))
        assert isinstance(verdict, LanguageSkip), lang
        assert verdict.language == lang and verdict.language_score > 0.5 and MULTILINGUAL[lang][:40] in verdict.text
    short = _article_page(MULTILINGUAL["de"][:150], "de")  # too little text for a verdict: the engine decides
    assert engine(short) == plain(short)
    assert not isinstance(make_engine(cfg, ["de"], 0.65)(_article_page(MULTILINGUAL["de"], "de")), LanguageSkip)


def test_language_precheck_scores_only_the_start_of_the_text() -> None:
    """A page that opens with 600 characters of German before a long English article is skipped when the pre-check
    reads 500 characters, and extracted when it reads them all (`prefix_chars: 0`)."""
    german = " ".join([MULTILINGUAL["de"]] * 3)[:600]
    page = _article_page(german + ". " + " ".join([ENGLISH_ARTICLE] * 8), "de")
    prefix = make_engine(ExtractConfig(engine="resiliparse"), ["en"], 0.65)
    whole = make_engine(ExtractConfig(engine="resiliparse", language_precheck={"prefix_chars": 0}), ["en"], 0.65)
    assert prefix.prefix_chars == 500 and isinstance(prefix(page), LanguageSkip)
    assert whole(page) == ResiliparseEngine()(page)


def test_language_precheck_applies_only_with_named_languages() -> None:
    off = ExtractConfig(language_precheck={"enabled": False})
    assert isinstance(make_engine(off, ["en"], 0.65), TrafilaturaEngine)
    assert isinstance(make_engine(ExtractConfig(), None, 0.65), TrafilaturaEngine)  # language filter off
    assert isinstance(make_engine(ExtractConfig(), [], 0.65), TrafilaturaEngine)  # keeps any language
    resiliparse = make_engine(ExtractConfig(engine="resiliparse"), ["en"], 0.65)
    assert resiliparse.quick is resiliparse.engine  # its own text is the quick text: extracted once
    assert make_engine(ExtractConfig(), ["en"], 0.05).max_score == 0.05  # never above the filter's threshold
    with pytest.raises(ValueError, match="max_score"):
        CurateConfig.model_validate({"extract": {"language_precheck": {"max_score": 2}}})
    for bad in ({"prefix_chars": -1}, {"prefix_chars": 50}, {"prefix_chars": 300, "min_chars": 400}):
        with pytest.raises(ValueError, match="prefix_chars"):
            CurateConfig.model_validate({"extract": {"language_precheck": bad}})


@pytest.mark.parametrize("engine_name", ["trafilatura", "resiliparse"])
def test_language_precheck_keeps_what_the_full_path_keeps(tmp_path: Path, engine_name: str) -> None:
    """The demo crawl (articles, boilerplate, spam, foreign pages, copies): with the pre-check the kept documents are
    those without it, and the foreign pages are dropped by the language filter as `language_precheck`, counted and
    in its rejects with their quick text."""
    crawl = tmp_path / "crawl"
    truth = write_demo_crawl(crawl)
    runs = {}
    for name, enabled in (("with", True), ("without", False)):
        extract = {"engine": engine_name, "language_precheck": {"enabled": enabled}}
        config = CurateConfig.model_validate({"extract": extract})
        summary = run_curate(config, [str(crawl)], tmp_path / name)
        assert assert_accounting(tmp_path / name) == summary
        data = pl.read_parquet(sorted((tmp_path / name / "data").glob("*.parquet")))
        runs[name] = (summary, sorted(zip(data["id"], data["text"], strict=True)))
    assert runs["with"][1] == runs["without"][1] and len(runs["with"][1]) == truth["counts"]["good"]
    foreign = [c["url"] for c in truth["cases"] if c["kind"] == "non_english"]
    language = {s["name"]: s for s in runs["with"][0]["stages"]}["language_filter"]
    assert language["dropped"]["language_precheck"] == len(foreign) > 0
    assert (
        "language_precheck" not in {s["name"]: s for s in runs["without"][0]["stages"]}["language_filter"]["dropped"]
    )
    rejects = pl.read_parquet(sorted((tmp_path / "with" / "rejects" / "language_filter").glob("*.parquet")))
    skipped = rejects.filter(pl.col("url").is_in(foreign))
    assert skipped.height == len(foreign) and not skipped["text"].str.contains("<p>").any()
