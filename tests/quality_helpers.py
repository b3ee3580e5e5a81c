"""Built-in inputs for the quality-classifier tests: planted good and bad texts, JSONL files, small models.

Good texts are the demo crawl's generated articles (`orchestration.demo_data.demo_texts`); bad texts are page
chrome and keyword spam generated here (navigation bars, cookie banners, price lists), the two kinds DCLM's
classifier learns to push down. Models use 20k hash buckets and 16 dimensions: about 1.3 MB and under a second
of training, instead of the 800 MB of the defaults.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from orchestration.demo_data import demo_texts
from pipelines.quality.config import ClassifierSettings
from pipelines.quality.examples import read_collections
from pipelines.quality.train import train_classifier

SMALL = ClassifierSettings(buckets=20_000, dim=16)
_MENU = "Home About Contact Login Register Cart Checkout Shop Blog FAQ Help Search Account Wishlist Sitemap".split()
_SPAM = "cheap best deal buy now free shipping discount sale offer replica watches casino bonus click here".split()
_BANNERS = (
    "We use cookies to improve your experience. Accept all cookies",
    "Subscribe to our newsletter for the latest offers",
    "All rights reserved. Terms of use. Privacy policy",
    "Follow us on Facebook Twitter Instagram",
)


def boilerplate_texts(count: int, seed: int = 0) -> list[str]:
    """Page chrome and spam: menus, banners, price lines and keyword runs, the same for a seed."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        lines = []
        for _ in range(rng.randint(8, 16)):
            kind = rng.randrange(4)
            if kind == 0:
                lines.append(" | ".join(rng.sample(_MENU, 5)))
            elif kind == 1:
                lines.append(rng.choice(_BANNERS))
            elif kind == 2:
                lines.append(
                    f"{rng.choice(_SPAM).title()} {rng.choice(_SPAM)} ${rng.randint(5, 99)}.{rng.randint(10, 99)}"
                )
            else:
                lines.append(" ".join(rng.choice(_SPAM) for _ in range(rng.randint(4, 12))))
        texts.append("\n".join(lines))
    return texts


def write_jsonl(path: Path, records: list[dict]) -> Path:
    """Write records as JSONL (creating the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def texts_jsonl(path: Path, texts: list[str]) -> Path:
    """Write `{"id", "text"}` records, ids `<file stem>-<n>`."""
    return write_jsonl(path, [{"id": f"{path.stem}-{i:03d}", "text": t} for i, t in enumerate(texts)])


def train_planted(folder: Path, settings: ClassifierSettings = SMALL, n: int = 60) -> Path:
    """A classifier of good articles (positive) against boilerplate (negative), trained from JSONL collections.

    Returns:
        The model file (its card beside it).
    """
    good = texts_jsonl(folder / "good.jsonl", demo_texts(n, seed=1))
    bad = texts_jsonl(folder / "bad.jsonl", boilerplate_texts(n, seed=1))
    model = folder / "planted.bin"
    train_classifier(read_collections([str(good)], [str(bad)]), model, settings)
    return model


def train_spread(folder: Path) -> Path:
    """A classifier of two random halves of the same kind of article.

    Its scores on other articles spread (about 0.47-0.53) instead of piling up at 0 or 1, which is what the
    threshold tests need; it is not meant to tell good from bad.
    """
    one = texts_jsonl(folder / "one.jsonl", demo_texts(40, seed=1))
    two = texts_jsonl(folder / "two.jsonl", demo_texts(40, seed=2))
    model = folder / "spread.bin"
    settings = SMALL.model_copy(update={"epochs": 50, "lr": 1.0})
    train_classifier(read_collections([str(one)], [str(two)]), model, settings)
    return model
