"""The `pii` stage: email addresses and public IP addresses are replaced, as in FineWeb's last step.

FineWeb ends its pipeline with datatrove's `PIIFormatter` (Penedo et al. 2024, section 3.1; datatrove
`pipeline/formatters/pii.py`). This stage keeps its email regex, its replacement strings (two addresses at the
reserved example.com/example.org domains, six IPv4 addresses that did not answer pings) and its use of
`ipaddress` to spare non-public IPs, and differs where the formatter replaces what is not an address or misses
what is:

- IPv6 addresses are replaced too (the formatter only knows IPv4); "public" means global unicast, `2000::/3`,
  and `ipaddress`'s `is_global` (so `::1`, `fe80::`, `fc00::/7` and the documentation range `2001:db8::/32`
  stay). The IPv6 replacements are the same strings as the IPv4 ones.
- An IPv4 address must stand alone: not preceded by a letter, digit, `_` or `.`, nor followed by a digit,
  letter or `.digit`. So `v1.2.3.4` and `1.2.3.4.5` (version strings) stay, where the formatter replaces the
  `1.2.3.4` inside them (it is a public APNIC address).
- Private, loopback, link-local, documentation (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24), shared
  (100.64.0.0/10) and multicast addresses stay: `is_global` and not multicast (the formatter replaces
  multicast addresses, which name groups, not hosts).
- An email's domain must end in a public suffix of the bundled public suffix list (tldextract, no network), so
  `name@2x.png` (a retina image name) stays; `user@localhost` has no dot and never matches the regex.
- Replacements cycle per document (the k-th email of a document gets replacement k mod len), not per task as
  in the formatter, so a document's text does not depend on which documents shared its task: the output stays
  the same for any worker count.

One policy for every text-bearing field curate writes: `PiiAnonymizer.scrub` (a string) and `scrub_metadata`
(metadata values and keys, nested dicts and lists, except `source_file`, the input's own path) are applied to a
document's text, url and metadata, to the rejects (`pipelines.curate.job.RejectsWriter`), to quarantine records
(`pipelines.curate.read`) and to what the report shows. Document ids and input file names stay: they are the
user's identifiers. By default (`raw_rejects: false`) `PiiStep` runs at the end of the `filter` step, before the
surviving documents are first written to `.work/`, so no work file, reject or kept document holds a raw address
(the dedup and quality steps then see anonymised text; the URL and text filters still judge the raw document);
the `pii` stage at the end of `dedup` only tallies the kept documents (`PiiTally`). `raw_rejects: true` (off by
default, loud: a terminal warning, `summary.json`'s `privacy`, the report) keeps rejects/, quarantine/ and the
work files raw, and `PiiStep` runs at the end of `dedup` instead, as in FineWeb. `enabled: false` replaces
nothing anywhere.

The stage drops nothing. Each document whose text changed gets `metadata["pii"]` = `{"emails": n, "ip_addresses":
m, "spans": [[start, end, kind], ...]}` (where the first 10 replacements sit in the new text, so the report can
show them without ever showing an original address). Counters (of the kept documents' text): `modified`
(documents changed), `replaced_emails`, `replaced_ip_addresses`; `summary.json` shows them as `modified` and
`replacements` {emails, ip_addresses}.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable
from typing import Any

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipelines.curate.stats import StageStats, passthrough, stage_from_counts

# datatrove's PIIFormatter defaults (FineWeb): reserved example domains, and IPs that did not answer pings.
EMAIL_REPLACEMENTS = ["email@example.com", "firstname.lastname@example.org"]
IP_REPLACEMENTS = [
    "22.214.171.124",
    "126.96.36.199",
    "188.8.131.52",
    "184.108.40.206",
    "220.127.116.11",
    "18.104.22.168",
]
SPANS_KEPT = 10
KEPT_AS_IS = ("source_file",)  # metadata keys never rewritten: the input file's path is the user's own name

# The email regex of datatrove's PIIFormatter (RFC 5322-like local part, dotted domain or [IP] literal).
_EMAIL = re.compile(
    r"\b[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:(?:[A-Za-z0-9](?:["
    r"A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?|\[(?:(?:25[0-5]|2[0-4][0-9]|["
    r"01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?|[A-Za-z0-9-]*[A-Za-z0-9]:)])"
)
# Scanned over a whole page the regex is quadratic in the runs of local-part characters (HTML attributes, URLs,
# base64 images): 63 s for one 674 kB page of the shared corpora. `_email_matches` runs it only on the window
# around each "@": the run of local-part characters and dots before it (what the regex can consume there, at most
# EMAIL_LOCAL_MAX of it) and the run of characters a domain or [IP] literal is made of after it.
_LOCAL_RUN_BACKWARDS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]*")
_DOMAIN_RUN = re.compile(r"[A-Za-z0-9.:\[\]-]*")
EMAIL_LOCAL_MAX = 1024  # characters before an "@" searched; RFC 5321 allows 64
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\d)(?!\w)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?![\w:]|\.\d)")
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
# Every address match contains one of these; they start with a literal, which `re` finds by a fast scan, while the
# address regexes start with a lookbehind tried at every character (0.36 CPU-s on 1,310 web pages against 0.006).
_IPV4_HINT = re.compile(r"\.\d{1,3}\.\d")
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")


class PiiConfig(BaseModel):
    """Which personal data the `pii` stage replaces, and with what (FineWeb: on, datatrove's replacements)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True  # FineWeb's last step
    emails: bool = True
    ip_addresses: bool = True  # public IPv4 and IPv6
    email_replacement: list[str] = Field(default_factory=lambda: list(EMAIL_REPLACEMENTS), min_length=1)
    ip_replacement: list[str] = Field(default_factory=lambda: list(IP_REPLACEMENTS), min_length=1)
    # Keep rejects/, quarantine/ and the work files under .work/ raw (kept documents stay anonymised). Off by
    # default; when on, curate warns in the terminal and summary.json and the report say so.
    raw_rejects: bool = False

    @field_validator("email_replacement", "ip_replacement", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        """Accept a single string as a one-element list."""
        return [value] if isinstance(value, str) else value


def is_public_ip(candidate: str) -> bool:
    """Whether `candidate` is an IPv4 or IPv6 address that can point at a person's host.

    Args:
        candidate: text matched by an address regex.

    Returns:
        True for a global, non-multicast address (IPv6: also inside 2000::/3, global unicast); False for
        private, loopback, link-local, documentation, shared, reserved or multicast addresses and non-addresses.
    """
    try:
        ip = ipaddress.ip_address(candidate)
    except ValueError:
        return False
    if not ip.is_global or ip.is_multicast:
        return False
    return ip.version == 4 or ip in _GLOBAL_UNICAST_V6


@functools.cache
def _suffix_extractor() -> Callable[[str], Any]:
    from tldextract import TLDExtract

    return TLDExtract(suffix_list_urls=())  # the bundled public suffix list; no network fetch


def is_email_domain(domain: str) -> bool:
    """Whether an email's domain can receive mail: an `[IP]` literal or a name under a public suffix.

    Args:
        domain: the part after `@`.

    Returns:
        False for names such as `2x.png` whose last label is no top-level domain.
    """
    return domain.startswith("[") or bool(_suffix_extractor()(domain).suffix)


class PiiAnonymizer:
    """Replaces emails and public IP addresses in a text (the pure function behind the `pii` stage).

    Args:
        config: what to replace and with what.
    """

    def __init__(self, config: PiiConfig | None = None):
        self.config = config or PiiConfig()

    def __call__(self, text: str) -> tuple[str, dict[str, Any]]:
        """Anonymise `text`.

        Args:
            text: a document's text.

        Returns:
            (new text, {"emails": n, "ip_addresses": m, "spans": [[start, end, "email"|"ip_address"], ...]}),
            spans into the new text, at most SPANS_KEPT of them. Text without replacements comes back unchanged.
        """
        found: list[tuple[int, int, str]] = []
        if self.config.emails and "@" in text:
            found += [(start, end, "email") for start, end, email in _email_matches(text) if self._is_email(email)]
        for hint, regex in ((_IPV4_HINT, _IPV4), (_IPV6_HINT, _IPV6)) if self.config.ip_addresses else ():
            if hint.search(text):
                found += [(m.start(), m.end(), "ip_address") for m in regex.finditer(text) if is_public_ip(m.group())]
        counts = {"emails": 0, "ip_addresses": 0}
        if not found:
            return text, {**counts, "spans": []}
        parts, spans, cursor, shift = [], [], 0, 0
        for start, end, kind in _non_overlapping(found):
            pool = self.config.email_replacement if kind == "email" else self.config.ip_replacement
            key = "emails" if kind == "email" else "ip_addresses"
            replacement = pool[counts[key] % len(pool)]
            counts[key] += 1
            parts += [text[cursor:start], replacement]
            if len(spans) < SPANS_KEPT:
                spans.append([start + shift, start + shift + len(replacement), kind])
            shift += len(replacement) - (end - start)
            cursor = end
        parts.append(text[cursor:])
        return "".join(parts), {**counts, "spans": spans}

    def scrub(self, text: str) -> str:
        """The one replacement policy for any string FineForge writes or shows: `text` anonymised."""
        if "@" not in text and "." not in text and ":" not in text:
            return text  # every email holds "@", every IPv4 or IPv6 address "." or ":" (most metadata strings)
        return self(text)[0]

    def scrub_metadata(self, value: Any) -> Any:
        """Metadata anonymised: every string value and key, in nested dicts and lists (`source_file` stays).

        Args:
            value: a document's metadata dict, or any value inside it.

        Returns:
            An equal structure with `scrub` applied to each string; other values unchanged.
        """
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {
                self.scrub(k) if isinstance(k, str) else k: v if k in KEPT_AS_IS else self.scrub_metadata(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.scrub_metadata(item) for item in value]
        return value

    @staticmethod
    def _is_email(match: str) -> bool:
        return is_email_domain(match.rpartition("@")[2])


def _email_matches(text: str) -> list[tuple[int, int, str]]:
    """(start, end, address) of each match of `_EMAIL.finditer(text)`, searched only around each "@" (linear).

    Every match holds one "@" and lies in its window, and the windows are taken left to right from the end of the
    previous match, so the matches are the regex's own over the whole text, but for a local part longer than
    EMAIL_LOCAL_MAX characters: its last EMAIL_LOCAL_MAX characters are searched as if the text began there.
    """
    matches: list[tuple[int, int, str]] = []
    backwards, resume = text[::-1], 0
    at = text.find("@")
    while at >= 0:
        local = _LOCAL_RUN_BACKWARDS.match(backwards, len(text) - at, len(text) - at + EMAIL_LOCAL_MAX).group()
        start, end = max(at - len(local), resume), _DOMAIN_RUN.match(text, at + 1).end()
        # A capped run is searched as a text of its own, so that the regex's \b holds where the window begins.
        offset, window = (start, text[start:end]) if len(local) == EMAIL_LOCAL_MAX else (0, text)
        for match in _EMAIL.finditer(window, start - offset, end - offset):
            matches.append((match.start() + offset, match.end() + offset, match.group()))
            resume = match.end() + offset
        at = text.find("@", end)
    return matches


def _non_overlapping(found: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Matches in text order, dropping any that overlap an earlier or, at the same start, a longer one (an IP inside
    an email's [IP] literal, or an IP that starts an email's local part as in `http://IP/path?to=name@host.com`)."""
    kept: list[tuple[int, int, str]] = []
    for start, end, kind in sorted(found, key=lambda match: (match[0], -match[1])):
        if not kept or start >= kept[-1][1]:
            kept.append((start, end, kind))
    return kept


class PiiStep(PipelineStep):
    """The `pii` curate stage: anonymises every document's text, url and metadata, drops none, counts the text.

    Args:
        config: what to replace and with what.
    """

    name = "pii"
    type = "🔏 - FORMAT"

    def __init__(self, config: PiiConfig | None = None):
        super().__init__()
        self.anonymize = PiiAnonymizer(config)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Yield every document, with emails and public IPs replaced in its text and metadata."""
        for doc in data:
            self.stat_update("total")
            with self.track_time():
                text, found = self.anonymize(doc.text)
                doc.metadata = self.anonymize.scrub_metadata(doc.metadata)
            if text != doc.text:
                doc.text = text
                doc.metadata["pii"] = found
                _count(self, found)
            self.stat_update("forwarded")
            yield doc


class PiiTally(PipelineStep):
    """The `pii` stage where `PiiStep` already ran earlier: counts the kept documents it changed, changes nothing."""

    name = "pii"
    type = "🔏 - FORMAT"

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Yield every document; count those carrying `PiiStep`'s `metadata["pii"]` record as it counts them."""
        for doc in data:
            self.stat_update("total")
            found = doc.metadata.get("pii")
            if isinstance(found, dict) and all(isinstance(found.get(k), int) for k in ("emails", "ip_addresses")):
                _count(self, found)  # an input field of the same name in another shape is the user's, not counted
            self.stat_update("forwarded")
            yield doc


def _count(step: PipelineStep, found: dict[str, Any]) -> None:
    step.stat_update("modified")
    step.stat_update("replaced_emails", value=found["emails"])
    step.stat_update("replaced_ip_addresses", value=found["ip_addresses"])


def privacy_record(config: PiiConfig) -> dict[str, Any]:
    """The `privacy` entry of summary.json: where raw addresses may remain, and the settings that replaced them.

    Args:
        config: the run's `pii` section.

    Returns:
        {"pii": on/off, "raw_rejects", "raw": folders of the output that may hold raw addresses, "config"}.
    """
    if not config.enabled:
        raw = ["data/", "rejects/", "quarantine/", ".work/"]
    else:
        raw = ["rejects/", "quarantine/", ".work/"] if config.raw_rejects else []
    return {"pii": config.enabled, "raw_rejects": config.raw_rejects, "raw": raw, "config": config.model_dump()}


def recorded_privacy(summary: dict[str, Any]) -> tuple[dict[str, Any], Callable[[str], str]]:
    """A finished run's `privacy` record and its replacement policy, for what is shown of the run (the report).

    Args:
        summary: the run's summary.json; one written before the record existed counts as pii on (default
            settings) unless its `pii` stage is `off`.

    Returns:
        (the record, `scrub` with the run's settings, or the identity when the run's pii stage was off).
    """
    record = summary.get("privacy")
    if not isinstance(record, dict):
        stage = next((s for s in summary.get("stages", []) if s.get("name") == "pii"), {})
        record = privacy_record(PiiConfig(enabled=stage.get("status") != "off"))
    if not record.get("pii"):
        return record, str
    return record, PiiAnonymizer(PiiConfig.model_validate(record.get("config") or {})).scrub


def privacy_warning(config: PiiConfig) -> str | None:
    """The terminal line for a run that keeps raw addresses somewhere (None when nothing raw is written).

    Args:
        config: the run's `pii` section.
    """
    if not config.enabled:
        return "note: pii.enabled is false: emails and IP addresses stay raw in every file this run writes"
    if config.raw_rejects:
        return (
            "WARNING: pii.raw_rejects is true: rejects/, quarantine/ and .work/ keep RAW email and IP addresses "
            "(kept documents in data/ are still anonymised); do not share those folders"
        )
    return None


def pii_stage_stats(counts: dict[str, int] | None, docs_in: int) -> StageStats:
    """The `pii` entry of summary.json from the step's counters.

    Args:
        counts: the step's summed datatrove counters; None when no document reached the (enabled) stage.
        docs_in: documents that reached the stage (used when `counts` is None).

    Returns:
        StageStats with `modified` and `replacements` {emails, ip_addresses} in its details.
    """
    stage = passthrough("pii", docs_in) if counts is None else stage_from_counts("pii", counts)
    counts = counts or {}
    stage.details = {
        "modified": counts.get("modified", 0),
        "replacements": {
            "emails": counts.get("replaced_emails", 0),
            "ip_addresses": counts.get("replaced_ip_addresses", 0),
        },
    }
    return stage
