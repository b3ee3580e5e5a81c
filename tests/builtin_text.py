"""Built-in test text, so that every test runs on a fresh clone without ../shared/corpora.

`demo_texts` (orchestration.demo_data) gives clean English articles, all ASCII. Real web text is not: this
module adds what it lacks, written here: a paragraph in each of 19 languages and 10 scripts (`MULTILINGUAL`;
the curate language filter names each one's language at score >= 0.96), and the documents that break naive
code (`EDGE_TEXTS`: emoji with joiners, combining marks, characters beyond the Basic Multilingual Plane,
zero-width and control characters, CRLF line ends, a literal `<|endoftext|>`, one 2,040-character word,
one-character, blank and empty documents).

`builtin_web_texts()` mixes them into 880 articles at fixed, spread positions (so both the front of a
shuffled order and its tail hold some): 913 documents, about 377k GPT-2 tokens, close to the 580 texts and
383k tokens of the shared `web-text.jsonl.gz`, so tests sized for one fit the other.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

from orchestration.demo_data import demo_texts

BUILTIN_ARTICLES = 880

# The same short news item in each language (written for these tests): three sentences, long enough for
# fastText language identification, with each language's own letters and punctuation.
MULTILINGUAL = {
    "de": "Am Samstag öffnet die Stadtbibliothek nach zwei Jahren Umbau wieder ihre Türen. Die Besucher können "
    "sich auf einen helleren Lesesaal, eine größere Kinderabteilung und längere Öffnungszeiten freuen. Die "
    "Bürgermeisterin dankte allen Handwerkern, die trotz des kalten Winters pünktlich fertig geworden sind.",
    "fr": "Samedi, la bibliothèque municipale rouvre ses portes après deux années de travaux. Les lecteurs y "
    "découvriront une salle de lecture plus lumineuse, un espace réservé aux enfants et des horaires élargis. "
    "La maire a remercié les artisans qui ont terminé le chantier à temps malgré un hiver très froid.",
    "es": "El sábado la biblioteca municipal vuelve a abrir sus puertas después de dos años de obras. Los vecinos "
    "encontrarán una sala de lectura más luminosa, un espacio para los niños y un horario más amplio. La "
    "alcaldesa agradeció a los obreros que terminaron el trabajo a tiempo a pesar del frío invierno.",
    "it": "Sabato la biblioteca comunale riapre le sue porte dopo due anni di lavori. I lettori troveranno una "
    "sala di lettura più luminosa, uno spazio dedicato ai bambini e un orario più lungo. La sindaca ha "
    "ringraziato gli operai che hanno finito il cantiere in tempo nonostante un inverno molto freddo.",
    "pt": "No sábado, a biblioteca municipal volta a abrir as suas portas depois de dois anos de obras. Os "
    "leitores vão encontrar uma sala de leitura mais luminosa, um espaço para as crianças e um horário mais "
    "alargado. A presidente da câmara agradeceu aos operários que terminaram a obra a tempo, apesar do frio.",
    "nl": "Op zaterdag gaat de openbare bibliotheek na twee jaar verbouwing weer open. Bezoekers vinden er een "
    "lichtere leeszaal, een aparte hoek voor kinderen en ruimere openingstijden. De burgemeester bedankte de "
    "bouwvakkers die ondanks de koude winter op tijd klaar waren.",
    "pl": "W sobotę miejska biblioteka ponownie otwiera swoje drzwi po dwóch latach remontu. Czytelnicy znajdą "
    "jaśniejszą czytelnię, osobny kącik dla dzieci i dłuższe godziny otwarcia. Pani burmistrz podziękowała "
    "robotnikom, którzy mimo mroźnej zimy skończyli pracę na czas.",
    "tr": "Cumartesi günü belediye kütüphanesi iki yıllık tadilattan sonra kapılarını yeniden açıyor. Okuyucular "
    "daha aydınlık bir okuma salonu, çocuklar için ayrı bir bölüm ve daha uzun çalışma saatleri bulacak. "
    "Belediye başkanı, soğuk kışa rağmen işi zamanında bitiren işçilere teşekkür etti.",
    "vi": "Vào thứ Bảy, thư viện thành phố mở cửa trở lại sau hai năm sửa chữa. Bạn đọc sẽ thấy một phòng đọc "
    "sáng sủa hơn, một góc riêng cho trẻ em và giờ mở cửa dài hơn. Bà thị trưởng cảm ơn những người thợ đã "
    "hoàn thành công việc đúng hạn dù mùa đông rất lạnh.",
    "ru": "В субботу городская библиотека снова открывает свои двери после двух лет ремонта. Читатели найдут "
    "светлый читальный зал, отдельный уголок для детей и более удобные часы работы. Мэр поблагодарила "
    "строителей, которые, несмотря на холодную зиму, закончили работу вовремя.",
    "el": "Το Σάββατο η δημοτική βιβλιοθήκη ανοίγει ξανά τις πόρτες της μετά από δύο χρόνια εργασιών. Οι "
    "αναγνώστες θα βρουν μια φωτεινή αίθουσα ανάγνωσης, έναν χώρο για τα παιδιά και μεγαλύτερο ωράριο. Η "
    "δήμαρχος ευχαρίστησε τους εργάτες που τελείωσαν έγκαιρα παρά τον κρύο χειμώνα.",
    "ar": "تعيد مكتبة المدينة فتح أبوابها يوم السبت بعد عامين من أعمال التجديد. سيجد القراء قاعة مطالعة أكثر "
    "إشراقًا وركنًا خاصًا بالأطفال وساعات عمل أطول. وشكرت رئيسة البلدية العمال الذين أنهوا العمل في موعده رغم "
    "برد الشتاء.",
    "he": "ביום שבת הספרייה העירונית נפתחת מחדש אחרי שנתיים של שיפוצים. הקוראים ימצאו אולם קריאה מואר יותר, "
    "פינה מיוחדת לילדים ושעות פתיחה ארוכות יותר. ראשת העיר הודתה לפועלים שסיימו את העבודה בזמן למרות החורף "
    "הקר.",
    "hi": "शनिवार को शहर का पुस्तकालय दो साल की मरम्मत के बाद फिर से खुल रहा है। पाठकों को एक ज़्यादा रोशन "
    "वाचनालय, बच्चों के लिए एक अलग कोना और खुलने का लंबा समय मिलेगा। महापौर ने उन मज़दूरों का धन्यवाद किया "
    "जिन्होंने ठंडी सर्दी के बावजूद काम समय पर पूरा किया।",
    "th": "ในวันเสาร์ ห้องสมุดของเมืองจะเปิดให้บริการอีกครั้งหลังจากการปรับปรุงนานสองปี ผู้อ่านจะได้พบกับห้องอ่านหนังสือ"
    "ที่สว่างขึ้น มุมสำหรับเด็ก และเวลาเปิดที่ยาวนานขึ้น นายกเทศมนตรีขอบคุณคนงานที่ทำงานเสร็จตรงเวลาแม้อากาศจะหนาวเย็น",
    "zh": "星期六，市图书馆在装修两年之后重新开放。读者会看到一个更明亮的阅览室、一个专门给孩子们的角落，以及更长的"
    "开放时间。市长感谢了工人们，他们在寒冷的冬天里仍然按时完成了工作。",
    "ja": "土曜日、市立図書館は二年間の改装を終えて再び開館します。利用者は明るくなった閲覧室や子ども向けのコーナー、"
    "そして長くなった開館時間を楽しむことができます。市長は、寒い冬にもかかわらず工事を期限内に終えた作業員たちに"
    "感謝しました。",
    "ko": "토요일에 시립 도서관이 2년간의 공사를 마치고 다시 문을 엽니다. 이용자들은 더 밝은 열람실과 어린이를 위한 "
    "공간, 그리고 더 길어진 운영 시간을 만날 수 있습니다. 시장은 추운 겨울에도 제때 공사를 끝낸 작업자들에게 "
    "감사의 뜻을 전했습니다.",
    "uk": "У суботу міська бібліотека знову відчиняє свої двері після двох років ремонту. Читачі знайдуть світлу "
    "читальну залу, окремий куточок для дітей і довші години роботи. Міська голова подякувала будівельникам, "
    "які попри холодну зиму завершили роботу вчасно.",
}

# Documents that break naive text handling: each one is here for the failure it would expose.
EDGE_TEXTS = [
    "Our bakery 🍞 opens at 7 am ☀️ and the cinnamon rolls 😋🎉 sell out by nine. Families 👨‍👩‍👧‍👦 and "
    "guide dogs 🐕‍🦺 are welcome; flags 🇩🇪🇯🇵 and skin tones 👋🏽 are single graphemes of several code points.",
    "“Curly quotes”, ‘single ones’, an en–dash, an em—dash, an ellipsis… and non-breaking\u00a0spaces; prices "
    "in € and £, 25 °C outside, ½ cup of flour, a naïve café résumé (décor, façade, smörgåsbord).",
    "Cafe\u0301 and nai\u0308ve written with combining accents, not precomposed letters; Z\u0351\u0353a\u0346l"
    "\u0341g\u0358o text stacks marks on one base character.",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 outside the Basic Multilingual Plane: ∀x∈ℝ, x² ≥ 0; the Gothic letter 𐍈 and 🀄 too.",
    "zero\u200bwidth\u200cnon\u200djoiners, a byte order mark\ufeff inside a line, a soft\u00adhyphen and a "
    "right-to-left mark\u200f before Latin text.",
    "Windows line\r\nendings\r\nwith\ttabs\tand a form\x0cfeed, a NUL \x00 byte, an escape \x1b[0m and DEL \x7f.",
    "A forum post that quotes the separator <|endoftext|> as plain text, twice: <|endoftext|>.",
    "supercalifragilisticexpialidocious" * 60,
    "a",
    "🙂",
    "Hi.",
    "   \n\t  ",
    "",
    "中文 mixed with English, 日本語のテキスト, 한국어 and العربية in one line.",
]


def builtin_web_texts(articles: int = BUILTIN_ARTICLES) -> list[str]:
    """English articles with the multilingual and edge documents spread among them, the same on every call.

    Args:
        articles: how many `demo_texts` articles to start from.

    Returns:
        The documents: the articles with the 33 others inserted at evenly spaced positions.
    """
    texts = demo_texts(articles)
    extra = [*MULTILINGUAL.values(), *EDGE_TEXTS]
    step = max(1, len(texts) // len(extra))
    for i, text in enumerate(extra):
        texts.insert(i * (step + 1), text)
    return texts


def write_jsonl_gz(path: Path, texts: list[str]) -> Path:
    """Write texts as gzipped JSON Lines in web-text.jsonl.gz's schema (`id`, `url`, `text`).

    Args:
        path: the file to write.
        texts: the documents, in order.

    Returns:
        `path`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for i, text in enumerate(texts):
            record = {"id": f"builtin-{i:04d}", "url": f"https://builtin.example.org/{i:04d}", "text": text}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def read_jsonl_texts(path: Path) -> list[str]:
    """The `text` field of every line of a (gzipped) JSON Lines file, in order."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


@dataclass(frozen=True)
class TextSource:
    """A JSON Lines file of documents and its texts, in file order.

    Attributes:
        name: "builtin" (written by the tests) or "corpora" (the shared web-text.jsonl.gz).
        path: the file.
        texts: the `text` field of each line.
    """

    name: str
    path: Path
    texts: list[str]


def _lines(text: str) -> list[str]:
    return [line for paragraph in text.split("\n\n") for line in paragraph.split(". ") if line]


# Ways web pages go wrong, each aimed at one rule of the Gopher, C4 or FineWeb filters (a page may trip others;
# C4 removes JavaScript notices and policy lines from a page rather than dropping it).
DEGRADATIONS = {
    "repeated_lines": lambda t: t + "\n" + "\n".join(["Buy cheap shoes online today at our store."] * 15),
    "top_ngram": lambda t: t + " " + " ".join(["click here"] * 80),
    "repeated_paragraphs": lambda t: "\n\n".join([t.split("\n\n")[0]] * 4 + [t]),
    "short": lambda t: t.split(". ")[0] + ".",
    "hashtags": lambda t: " ".join(f"#tag{i % 3}" for i in range(80)) + "\n" + t,
    "bullets": lambda t: "\n".join(f"- {line}" for line in _lines(t)),
    "ellipsis_lines": lambda t: "\n".join(f"{line[:40]}..." for line in _lines(t)),
    "lorem_ipsum": lambda t: t + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit.",
    "curly_brackets": lambda t: t + "\nfunction show() { return document.title; }",
    "javascript_notice": lambda t: t + "\nPlease enable JavaScript to view the comments.",
    "policy_lines": lambda t: t + "\nRead our privacy policy and terms of use.\nWe use cookies on this site.",
    "no_punctuation": lambda t: "\n".join(line.rstrip(".") for line in _lines(t)),
    "menu_lines": lambda t: "\n".join(["Home", "News", "Sport", "Weather", "Contact", "About", "Jobs"] * 3 + [t]),
    "duplicate_chars": lambda t: t + "\n" + "\n".join([t.split("\n\n")[0]] * 3),
    "upper_case": lambda t: t.upper(),
    "no_stop_words": lambda t: " ".join(w for w in t.split() if w.lower() not in {"the", "and", "of", "that", "a"}),
    "symbols": lambda t: " ".join(f"{w} @@ ## $$" for w in t.split()[:120]),
}


def degraded_texts(texts: list[str]) -> list[str]:
    """Each text damaged by one of `DEGRADATIONS` in turn: pages that the quality filters should drop.

    Args:
        texts: clean articles (`demo_texts`), at least one per degradation for full coverage.

    Returns:
        One damaged text per input text.
    """
    damage = list(DEGRADATIONS.values())
    return [damage[i % len(damage)](text) for i, text in enumerate(texts)]
