"""The `extract` stage: main-text extraction from HTML with trafilatura (FineWeb's choice) or resiliparse.

FineWeb runs datatrove's `Trafilatura(favour_precision=True)` on WARC responses; DCLM-Baseline runs
resiliparse's `extract_plain_text(main_content=True)`. `extract.engine` picks one; both run inside datatrove's
extraction sandbox (a child process per task, so a pathological page costs a timeout, not the task). We add:

- Documents that are already text (JSONL, Parquet, WET records; `metadata["content_type"] == "text"`) pass
  through untouched, so one pipeline reads every format.
- Failures are loud. trafilatura needs `lxml_html_clean` (lxml >= 5.2 split it out); without it the ImportError
  happens inside the sandbox and datatrove drops *every* page as a silent `clean_error`. We import the engine's
  modules in the parent when the step is built and raise a clear error instead. Every drop carries a reason:
  `empty_extraction`, `timeout`, `extraction_error`, `broken_process`.

Measured by `benchmarks/extract.py` on the 990 human-marked pages of trafilatura-eval (one core, bag-of-words
against the `with`/`without` snippets; 2-core machine under a load of about 10): trafilatura `favour_precision`
26 pages/s at F1 0.879, resiliparse with the options below 443 pages/s (17x) at F1 0.859. From DCLM's call
(`main_content=True`, F1 0.845), `comments` off gave 0.852, `alt_texts` and `list_bullets` off 0.854, and
trimming trailing lines up to the last punctuated line of at least 5 words (`trim_tail_min_words`, a few
microseconds a page) 0.859. Tried and not kept: `post_meta` off (0.854), CSS `skip_elements` for navigation,
share and newsletter blocks (0.858), dropping lines under 3 words (0.860; C4's line filter does that
downstream anyway). End to end from WARC (`benchmarks/curate.py --e2e-warc 1333`), the whole curate ran 3.7x faster
per core with resiliparse (74.8 against 20.4 documents/s) and kept about as many documents (220 against 228).
trafilatura stays the default: it is FineWeb's choice and more accurate, above all on boilerplate (snippet
precision 0.92 against 0.83); resiliparse is the engine for throughput.

Language pre-check (`extract.language_precheck`, on while the language filter keeps named languages): on a
multilingual crawl most pages are dropped by the language filter, after trafilatura (about 60 ms a page) and after
fastText has scored their whole text (about 2 ms for a 5,500-character page). `LanguagePrecheck` scores the first
`prefix_chars` (500) characters of resiliparse's text (about 4 ms) with the filter's own fastText model; a page with
at least `min_chars` (200) of such text on which every accepted language scores at most `max_score` (0.1) never
reaches trafilatura or the full language ID and is dropped by the language filter as `language_precheck`, with
resiliparse's text in its rejects. Measured on the 1,333 multilingual shared pages (`benchmarks/curate.py
--e2e-warc`; numbers in the README's Curate section).

The per-page timeout defaults to 10 s rather than datatrove's 1 s: on a loaded 2-core machine a large page
can take over 1 s, and a timeout that depends on machine load would make reruns differ.

The sandbox's child is quiet (`QuietSandbox`): it warms up on a small page instead of an empty string (trafilatura
logs three ERRORs for "" alone), its stdlib log records (trafilatura's "lxml parsing failed: Document is empty" for
a page that is not HTML) go to datatrove's log as warnings, since the stage counts such a page as a drop already,
and it ends on SIGTERM without a traceback even when forked from a Prefect flow run, whose SIGTERM handler raises
`TerminationSignal`.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.extractors.base import BaseExtractor, ExtractorSandbox
from datatrove.pipeline.writers.disk_base import DiskWriter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.curate.lid import bundled_ft176

EngineName = Literal["trafilatura", "resiliparse"]
WARMUP_PAGE = "<html><body><p>A short paragraph to warm the extractor up.</p></body></html>"
_TERMINAL_PUNCTUATION = tuple(".!?:;\"')”»。！？")


class TrafilaturaOptions(BaseModel):
    """trafilatura's main options, as datatrove passes them (`include_comments=False` always)."""

    model_config = ConfigDict(extra="forbid")

    favour_precision: bool = True  # FineWeb's setting (datatrove examples/fineweb.py)
    deduplicate: bool = True  # trafilatura's in-page dedup, datatrove's default


class ResiliparseOptions(BaseModel):
    """resiliparse `extract_plain_text` options plus one cheap post-cleaning step, tuned by benchmarks/extract.py."""

    model_config = ConfigDict(extra="forbid")

    main_content: bool = True  # DCLM-Baseline's setting: main-content heuristics instead of all visible text
    preserve_formatting: bool = True  # keep line breaks: the C4 and FineWeb filters work on lines
    comments: bool = False  # comment sections are boilerplate in the evaluation (F1 +0.007)
    alt_texts: bool = False  # image alt texts (with list_bullets off: F1 +0.002)
    list_bullets: bool = False  # bullet characters would count as words and trip the Gopher bullet rule
    links: bool = False  # link target URLs inline
    form_fields: bool = False
    noscript: bool = False
    post_meta: bool = True  # blog/article meta lines (author, date); off lost recall (F1 -0.005)
    skip_elements: list[str] = Field(default_factory=list)  # CSS selectors to skip (did not help on the eval set)
    # Drop trailing lines up to the last line of >= N words that ends in punctuation (related-article lists,
    # share prompts, footers below the article); never drops everything. 0 turns it off. F1 +0.005.
    trim_tail_min_words: int = Field(5, ge=0)


class LanguagePrecheckConfig(BaseModel):
    """Judge a page's language on the start of its resiliparse text before the full extraction and language ID."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # Skip when every accepted language scores at most this on resiliparse's text (never above the language filter's
    # own threshold) ...
    max_score: float = Field(0.1, ge=0, le=1)
    # ... and that text has at least this many characters (fastText on a few words is no evidence).
    min_chars: int = Field(200, ge=1)
    # fastText scores only the first this many characters of it (0: all); its cost grows with the text's length.
    prefix_chars: int = Field(500, ge=0)

    @model_validator(mode="after")
    def _prefix_holds_min_chars(self) -> LanguagePrecheckConfig:
        """Refuse a prefix shorter than `min_chars`: the verdict would rest on less text than min_chars demands."""
        if 0 < self.prefix_chars < self.min_chars:
            limit = f"0 (all) or at least min_chars ({self.min_chars})"
            raise ValueError(f"prefix_chars ({self.prefix_chars}) must be {limit}")
        return self


TRAFILATURA_FLAT_KEYS = ("favour_precision", "deduplicate")  # where they lived before `engine` existed


class ExtractConfig(BaseModel):
    """Main-text extraction of HTML documents (text documents pass through)."""

    model_config = ConfigDict(extra="forbid")

    engine: EngineName = "trafilatura"  # FineWeb's extractor; resiliparse is ~17x faster per page
    timeout_s: float = Field(10.0, gt=0)  # per page; datatrove's 1 s is load-dependent on small machines
    trafilatura: TrafilaturaOptions = Field(default_factory=TrafilaturaOptions)
    resiliparse: ResiliparseOptions = Field(default_factory=ResiliparseOptions)
    language_precheck: LanguagePrecheckConfig = Field(default_factory=LanguagePrecheckConfig)

    @model_validator(mode="before")
    @classmethod
    def _flat_trafilatura_options(cls, data: Any) -> Any:
        """Read configs written before there were engines: `extract.favour_precision` means trafilatura's."""
        if not isinstance(data, dict) or not (flat := {k: data[k] for k in TRAFILATURA_FLAT_KEYS if k in data}):
            return data
        nested = data.get("trafilatura") or {}
        if clash := sorted(set(flat) & set(nested)):
            raise ValueError(f"extract.{clash[0]} and extract.trafilatura.{clash[0]} are both set; keep one")
        rest = {k: v for k, v in data.items() if k not in flat}
        return {**rest, "trafilatura": {**nested, **flat}}


def check_extraction_dependencies(engine: EngineName = "trafilatura") -> None:
    """Fail early, with the fix, if the engine cannot run here.

    Args:
        engine: `trafilatura` or `resiliparse`.

    Raises:
        RuntimeError: a module the engine needs is missing or broken.
    """
    modules = {"trafilatura": ("lxml_html_clean", "trafilatura"), "resiliparse": ("resiliparse.extract.html2text",)}
    for module in modules[engine]:
        try:
            importlib.import_module(module)
        except ImportError as err:
            package = module.split(".")[0]
            raise RuntimeError(
                f"HTML extraction with {engine} needs '{package}' ({err}); install it with `pip install "
                f"{package}`. Without it the extractor drops every page."
            ) from err


def _closes_text(line: str, min_words: int) -> bool:
    """Whether a line can end the main text: at least `min_words` words and terminal punctuation."""
    return len(line.split()) >= min_words and line.rstrip().endswith(_TERMINAL_PUNCTUATION)


def trim_tail(text: str, min_words: int) -> str:
    """Drop trailing lines up to the last line of at least `min_words` words ending in punctuation.

    Args:
        text: extracted text, one block per line.
        min_words: words the last kept line needs (0: return `text` unchanged).

    Returns:
        The trimmed text, or `text` itself when no line qualifies.
    """
    if not min_words:
        return text
    lines = text.splitlines()
    end = len(lines)
    while end and not _closes_text(lines[end - 1], min_words):
        end -= 1
    return "\n".join(lines[:end]) if end else text


class TrafilaturaEngine:
    """`trafilatura.extract` with datatrove's call (FineWeb: favour precision, no comments, dedup).

    Args:
        options: trafilatura settings.
    """

    name = "trafilatura"

    def __init__(self, options: TrafilaturaOptions | None = None):
        self.options = options or TrafilaturaOptions()

    def __call__(self, html: str) -> str | None:
        """Return the main text of `html` (None or "" when trafilatura finds none)."""
        from trafilatura import extract

        return extract(
            html,
            favor_precision=self.options.favour_precision,
            include_comments=False,
            deduplicate=self.options.deduplicate,
        )


class ResiliparseEngine:
    """resiliparse `extract_plain_text`, then `trim_tail`.

    Args:
        options: resiliparse settings.
    """

    name = "resiliparse"

    def __init__(self, options: ResiliparseOptions | None = None):
        self.options = options or ResiliparseOptions()
        self._kwargs = self.options.model_dump(exclude={"trim_tail_min_words", "skip_elements"})
        self._kwargs["skip_elements"] = list(self.options.skip_elements) or None

    def __call__(self, html: str) -> str:
        """Return the main text of `html` ("" when there is none)."""
        from resiliparse.extract.html2text import extract_plain_text

        text = extract_plain_text(html, **self._kwargs)
        return trim_tail(text, self.options.trim_tail_min_words).strip()


PRECHECK_KEY = "language_precheck"  # metadata of a page the pre-check judged: the language filter drops it


@dataclass(frozen=True)
class LanguageSkip:
    """A page the language pre-check judged unkeepable: resiliparse's text and fastText's best language on it."""

    text: str
    language: str
    language_score: float


class LanguagePrecheck:
    """An engine that gives up early on pages whose quick text is clearly in no accepted language.

    The quick text is resiliparse's: with trafilatura as the engine, resiliparse's default call (about 4 ms a page
    against trafilatura's 60); with resiliparse as the engine, its own text, which is then the result. The language
    filter's own model (fastText lid.176) scores the first `prefix_chars` characters of it; when every accepted
    language scores at most `max_score` there, the call returns a `LanguageSkip`, which the extractor forwards with
    the quick text and `PRECHECK_KEY` set, and the language filter drops it as `language_precheck` instead of scoring
    the whole text. A page whose quick text is shorter than `min_chars` is not judged: on the shared pages, each
    page the full path would keep but the pre-check would skip had under 130 characters of resiliparse text (its
    main text lay where resiliparse did not look).

    Args:
        engine: the real extraction engine.
        languages: the language filter's accepted languages.
        max_score: the skip bound; the language filter keeps only pages that score above its threshold.
        min_chars: the shortest quick text the pre-check judges.
        prefix_chars: how much of the quick text fastText scores (0: all of it).
    """

    def __init__(
        self,
        engine: TrafilaturaEngine | ResiliparseEngine,
        languages: list[str],
        max_score: float,
        min_chars: int,
        prefix_chars: int,
    ):
        self.engine, self.max_score, self.min_chars, self.prefix_chars = engine, max_score, min_chars, prefix_chars
        self.name = engine.name
        self.quick = engine if isinstance(engine, ResiliparseEngine) else ResiliparseEngine()
        self.lid = bundled_ft176(languages)

    def __call__(self, html: str) -> str | LanguageSkip | None:
        """The engine's text of `html`, or a `LanguageSkip` when its quick text is in no accepted language."""
        quick = self.quick(html)
        if len(quick) >= self.min_chars:
            sample = quick[: self.prefix_chars] if self.prefix_chars else quick
            (language, score), accepted = self.lid.predict(Document(text=sample, id=""))
            if max(accepted.values()) <= self.max_score:
                return LanguageSkip(quick, language, score)
        return quick if self.quick is self.engine else self.engine(html)


def make_engine(
    cfg: ExtractConfig, languages: list[str] | None = None, threshold: float = 1.0
) -> TrafilaturaEngine | ResiliparseEngine | LanguagePrecheck:
    """The extraction function `cfg.engine` names, with its options, behind the language pre-check where it applies.

    Args:
        cfg: the extract settings.
        languages: the languages the language filter keeps (None or []: the filter is off or keeps any language,
            so there is no pre-check).
        threshold: the language filter's threshold; the pre-check's bound never exceeds it.

    Returns:
        A callable `html -> text` (picklable, so it can run in the sandbox's child process).
    """
    precheck = cfg.language_precheck
    engine = ResiliparseEngine(cfg.resiliparse) if cfg.engine == "resiliparse" else TrafilaturaEngine(cfg.trafilatura)
    if not (precheck.enabled and languages):
        return engine
    bound = min(precheck.max_score, threshold)
    return LanguagePrecheck(engine, languages, bound, precheck.min_chars, precheck.prefix_chars)


class _ToDatatroveLog(logging.Handler):
    """Pass stdlib log records on to datatrove's log (loguru), an ERROR about one page as a WARNING."""

    def emit(self, record: logging.LogRecord) -> None:
        from datatrove.utils.logging import logger

        level = "WARNING" if record.levelno >= logging.WARNING else "DEBUG"
        logger.log(level, "{}: {}", record.name, record.getMessage())


class QuietSandbox(ExtractorSandbox):
    """datatrove's extraction sandbox whose child warms up on a page, logs to datatrove's log and dies quietly.

    Args:
        timeout: seconds per page.
    """

    def __init__(self, timeout: float):
        super().__init__(timeout=timeout, warmup_text=WARMUP_PAGE)

    def _worker(self, conn: Any, extract_fn: Callable) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler (Prefect's raises a traceback)
        logging.root.handlers = [_ToDatatroveLog()]
        super()._worker(conn, extract_fn)


class HtmlExtractor(BaseExtractor):
    """Main-text extraction of HTML documents with a pluggable engine; text documents pass through.

    Args:
        engine: `html -> text` (default: trafilatura with FineWeb's options).
        timeout: seconds per page before it is dropped as `timeout`.
        exclusion_writer: receives dropped pages with `metadata["filter_reason"]`.
    """

    name = "extract"

    def __init__(
        self,
        engine: TrafilaturaEngine | ResiliparseEngine | LanguagePrecheck | None = None,
        timeout: float = 10.0,
        exclusion_writer: DiskWriter | None = None,
    ):
        self.engine = engine or TrafilaturaEngine()
        check_extraction_dependencies(self.engine.name)
        super().__init__(timeout=timeout)
        self.exclusion_writer = exclusion_writer

    def extract(self, text: str) -> str | None:
        """The engine's main text of one HTML page."""
        return self.engine(text)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Extract the main text of each HTML document; pass text documents on unchanged."""
        rejects = self.exclusion_writer or contextlib.nullcontext()
        with QuietSandbox(self.timeout) as sandbox, rejects:
            for doc in data:
                self.stat_update("total")
                if doc.metadata.get("content_type") != "html":
                    self.stat_update("forwarded", "passthrough")
                    yield doc
                    continue
                with self.track_time():
                    reason = self._extract_into(doc, sandbox.process_document)
                if reason is None:
                    self.stat_update("forwarded", PRECHECK_KEY if PRECHECK_KEY in doc.metadata else "extracted")
                    self.update_doc_stats(doc)
                    yield doc
                    continue
                self.stat_update("dropped", f"dropped_{reason}")
                if self.exclusion_writer is not None:
                    doc.metadata["filter_reason"] = reason
                    self.exclusion_writer.write(doc, rank)

    def _extract_into(self, doc: Document, process: Callable) -> str | None:
        """Replace `doc.text` by its extracted text; return a drop reason, or None on success."""
        try:
            text = process(doc.text, self.extract)
        except TimeoutError:
            return "timeout"
        except EOFError:
            return "broken_process"
        except Exception:  # extractors raise many types; each failing page only costs a counted drop
            return "extraction_error"
        if isinstance(text, LanguageSkip):
            doc.text = text.text
            doc.metadata.update(language=text.language, language_score=text.language_score, **{PRECHECK_KEY: True})
            return None
        if not text:
            return "empty_extraction"
        doc.text = text
        return None
