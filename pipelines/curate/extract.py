"""The `extract` stage: main-text extraction from HTML with trafilatura, as FineWeb does it.

FineWeb runs datatrove's `Trafilatura(favour_precision=True)` on WARC responses; we keep that step and its
sandbox (a child process per task, so a pathological page costs a timeout, not the task) and add two things:

- Documents that are already text (JSONL, Parquet, WET records; `metadata["content_type"] == "text"`) pass
  through untouched, so one pipeline reads every format.
- Failures are loud. trafilatura needs `lxml_html_clean` (lxml >= 5.2 split it out); without it the ImportError
  happens inside the sandbox and datatrove drops *every* page as a silent `clean_error`. We import trafilatura's
  extractor in the parent when the step is built and raise a clear error instead. Every drop carries a reason:
  `empty_extraction`, `timeout`, `extraction_error`, `broken_process`.

The per-page timeout defaults to 10 s rather than datatrove's 1 s: on a loaded 2-core machine a large page
can take over 1 s, and a timeout that depends on machine load would make reruns differ.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.extractors.base import ExtractorSandbox
from datatrove.pipeline.extractors.trafilatura import Trafilatura
from datatrove.pipeline.writers.disk_base import DiskWriter


def check_extraction_dependencies() -> None:
    """Fail early, with the fix, if trafilatura cannot run here.

    Raises:
        RuntimeError: `lxml_html_clean` or trafilatura is missing or broken.
    """
    for module in ("lxml_html_clean", "trafilatura"):
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise RuntimeError(
                f"HTML extraction needs '{module}' ({err}); install it with `pip install lxml_html_clean "
                "trafilatura`. Without it trafilatura drops every page."
            ) from err


class HtmlExtractor(Trafilatura):
    """Trafilatura on HTML documents; text documents pass through.

    Args:
        timeout: seconds per page before it is dropped as `timeout`.
        favour_precision: trafilatura's precision mode (FineWeb: True).
        deduplicate: trafilatura's in-page deduplication (datatrove default: True).
        exclusion_writer: receives dropped pages with `metadata["filter_reason"]`.
    """

    name = "extract"

    def __init__(
        self,
        timeout: float = 10.0,
        favour_precision: bool = True,
        deduplicate: bool = True,
        exclusion_writer: DiskWriter | None = None,
    ):
        check_extraction_dependencies()
        super().__init__(favour_precision=favour_precision, timeout=timeout, deduplicate=deduplicate)
        self.exclusion_writer = exclusion_writer

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Extract the main text of each HTML document; pass text documents on unchanged."""
        rejects = self.exclusion_writer or contextlib.nullcontext()
        with ExtractorSandbox(timeout=self.timeout, warmup_text="") as sandbox, rejects:
            for doc in data:
                self.stat_update("total")
                if doc.metadata.get("content_type") != "html":
                    self.stat_update("forwarded", "passthrough")
                    yield doc
                    continue
                with self.track_time():
                    reason = self._extract_into(doc, sandbox.process_document)
                if reason is None:
                    self.stat_update("forwarded", "extracted")
                    self.update_doc_stats(doc)
                    yield doc
                    continue
                self.stat_update("dropped", f"dropped_{reason}")
                if self.exclusion_writer is not None:
                    doc.metadata["filter_reason"] = reason
                    self.exclusion_writer.write(doc, rank)

    def _extract_into(self, doc, process: Callable) -> str | None:
        """Replace `doc.text` by its extracted text; return a drop reason, or None on success."""
        try:
            text = process(doc.text, self.extract)
        except TimeoutError:
            return "timeout"
        except EOFError:
            return "broken_process"
        except Exception:  # trafilatura raises many types; each failing page only costs a counted drop
            return "extraction_error"
        if not text:
            return "empty_extraction"
        doc.text = text
        return None
