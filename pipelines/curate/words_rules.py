"""English tokenization rules for `pipelines.curate.words`: affix character sets and special cases.

The character sets and exception classes follow the behaviour of spaCy's English tokenizer (spaCy 3.x,
`spacy.blank("en")`), which datatrove's filters use by default; they are written here as data so that the fast
tokenizer needs no spaCy at run time. Special cases are generated from a few small tables (pronoun and verb
contractions, abbreviations, clock times) instead of being listed one by one.
"""

from __future__ import annotations

from functools import lru_cache

# Opening/closing quotes and brackets that split off either end of a chunk.
QUOTES = "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉⟦⟧"
PUNCT = "…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪"
CURRENCY = ["$", "£", "€", "¥", "฿", "US$", "C$", "A$", "₽", "﷼", "₴"] + [chr(c) for c in range(0x20A0, 0x20C0)]
# Units split off a number ("5km" -> "5", "km"), Latin and Cyrillic forms.
UNITS = (
    "km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb oz m/s km/h kmh mph "
    "hPa Pa mbar mb MB kb KB gb GB tb TB T G M K % км км² км³ м м² м³ дм дм² дм³ см см² см³ мм мм² мм³ нм кг г мг "
    "м/с км/ч кПа Па мбар Кб КБ кб Мб МБ мб Гб ГБ гб Тб ТБ тб"
).split()
PREFIX_CHARS = frozenset("§%=—–" + PUNCT + QUOTES + "".join(c for c in CURRENCY if len(c) == 1))
SUFFIX_CHARS = frozenset(PUNCT + QUOTES + "—–")

_APOSTROPHES = ("'", "’")
_PRONOUNS = ("i", "you", "he", "she", "it", "we", "they")
# demonstratives and wh-words with the contracted forms they take
_DEMONSTRATIVES = {
    **{w: ("ll", "d", "re", "ve", "s") for w in ("who", "what", "when", "where", "why", "how", "there")},
    "that": ("ll", "d", "s"),
    "this": ("ll", "d", "s"),
    "these": ("ll", "d", "re", "ve"),
    "those": ("ll", "d", "re", "ve"),
}
# verb stems before "n't": "ca" (can't), "wo" (won't), "sha" (shan't), "ai" (ain't)
_NEG_STEMS = (
    "are ca could did does do had has have is may might must need ought sha should was were wo would ai dare"
).split()
_NEG_STEMS_NO_VE = {"ai", "are", "dare", "has", "have", "is", "was", "were"}
_MODALS = ("could", "might", "must", "should", "would")
# apostrophe-less spellings that are ordinary words and so are not split
_REAL_WORDS = {"ill", "well", "hell", "shell", "its", "were", "shed", "lets", "whore"}
_ABBREVIATIONS = (
    "Adm. Ak. Ala. Apr. Ariz. Ark. Aug. Bros. Calif. Co. Colo. Conn. Corp. D.C. Dec. Del. Dr. E.G. E.g. Feb. "
    "Fla. Ga. Gen. Gov. I.E. I.e. Ia. Id. Ill. Inc. Ind. Jan. Jr. Jul. Jun. Kan. Kans. Ky. La. Ltd. Mar. Mass. "
    "Md. Messrs. Mich. Minn. Miss. Mo. Mont. Mr. Mrs. Ms. Mt. N.C. N.D. N.H. N.J. N.M. N.Y. Neb. Nebr. Nev. Nov. "
    "Oct. Okla. Ore. Pa. Ph.D. Prof. Rep. Rev. S.C. Sen. Sep. Sept. St. Tenn. Va. Wash. Wis. a.m. co. e.g. i.e. "
    "p.m. v.s. vs. ä. ö. ü. ._. and/or w/o C++"
).split()
_SINGLE_TOKENS = (
    "em ll nuff ol Ol ‘s ‘S "
    ":) :-) :( :-( ;) ;-) :D :-D :P :-P :p :-p :O :-O :o :-o :X :-X :x :-x :/ :| :-| :'( :') :* :-* :3 :-3 "
    ":(( :((( :)) :-)) =) =( =D =/ =| (: ): (= <3 <33 </3 8) 8-) 8D 8-D ;D ;-D XD xD XDD xDD ^_^ ^__^ -_- "
    "o.o O.O o.O O.o o_o O_O o_O O_o 0_o o_0 0.o o.0 v.v V.V v_v V_V (-_-) (>_<) ಠ_ಠ (ಠ_ಠ) ಠ︵ಠ >:o >:( :o) (o: "
    "[: [= ]= ¯\\(ツ)/¯ (╯°□°）╯︵┻━┻ ><(((*> (*_*) (-8 (-: (-; (._.) (; (^_^) (¬_¬) )-: -__- 0.0 0_0 :'-( :'-) :() "
    ":))) :-(( :-((( :-))) :-/ :-0 :-> :-] :-} :0 :1 :> :] :} :’( :’) :’-( :’-) ;_; <.< <333 =3 =[ =] >.< >.> "
    "@_@ [-: \\\") ^___^ ' '' ’’ ’ —"
).split()


def _cases(word: str) -> set[str]:
    return {word, word[0].upper() + word[1:]} if word != "i" else {"i", "I"}


@lru_cache(maxsize=1)
def special_cases() -> dict[str, tuple[str, ...]]:
    """Chunks that tokenize in a fixed way, mapped to their tokens (which concatenate to the chunk).

    Returns:
        A dict such as {"don't": ("do", "n't"), "Mr.": ("Mr.",), "3pm": ("3", "pm")}.
    """
    out: dict[str, tuple[str, ...]] = {}

    def add(*parts: str) -> None:
        key = "".join(parts)
        if key.lower() not in _REAL_WORDS:
            out[key] = parts

    for a in (*_APOSTROPHES, ""):
        for pron in _PRONOUNS:
            for p in _cases(pron):
                add(p, a + "ll")
                add(p, a + "ll", a + "ve")
                add(p, a + "d")
                add(p, a + "d", a + "ve")
                if pron in ("i", "you", "we", "they"):
                    add(p, a + "ve")
                if pron in ("you", "we", "they"):
                    add(p, a + "re")
                if pron in ("he", "she", "it"):
                    add(p, a + "s")
                if pron == "i":
                    add(p, a + "m")
                    add(p, a + "m", "a")
        for dem, tails in _DEMONSTRATIVES.items():
            for w in _cases(dem):
                for tail in tails:
                    add(w, a + tail)
                add(w, a + "ll", a + "ve")
                add(w, a + "d", a + "ve")
        for stem in _NEG_STEMS:
            for v in _cases(stem):
                add(v, "n" + a + "t")
                if stem not in _NEG_STEMS_NO_VE:
                    add(v, "n" + a + "t", a + "ve")
        for w in _cases("not"):
            add(w, a + "ve")
        for w in _cases("how") if a else ():
            add(w, a + "d", a + "y")
        for modal in _MODALS:
            for v in _cases(modal):
                add(v, a + "ve")
        for verb in ("doin", "goin", "havin", "lovin", "nothin", "nuthin", "somethin"):
            for v in _cases(verb):
                out[v + a] = (v + a,)
        for w in ("let",):
            for v in _cases(w):
                add(v, a + "s")
        if a:
            for w in ("s", "S", "d", "ll", "re", "em", "bout", "nuff", "cause", "Cause", "cos", "Cos", "coz", "Coz"):
                out[a + w] = (a + w,)
            for w in ("cuz", "Cuz", "ma" + a + "am", "Ma" + a + "am", "o" + a + "clock", "O" + a + "clock"):
                out[a + w if len(w) == 3 else w] = (a + w if len(w) == 3 else w,)
            for w in ("ol" + a, "Ol" + a):
                out[w] = (w,)
        if a:
            add("y" + a, "all")
            add("c" + a + "m", "on")
            add("C" + a + "m", "on")
    for w, parts in (("cannot", ("can", "not")), ("gonna", ("gon", "na")), ("gotta", ("got", "ta"))):
        for v in _cases(w):
            out[v] = (v[: len(parts[0])], parts[1])
    out["yall"] = ("y", "all")
    for unit in "CFKcfk":
        out[f"°{unit}."] = ("°", unit, ".")
    for hour in range(1, 13):
        for suffix in ("a.m.", "p.m.", "am", "pm"):
            out[f"{hour}{suffix}"] = (str(hour), suffix)
    for letter in "abcdefghijklmnopqrstuvwxyz":
        out[letter + "."] = (letter + ".",)
    for tok in _ABBREVIATIONS + _SINGLE_TOKENS:
        out[tok] = (tok,)
    return out
