"""Words of a campaign's own text, for the offline engines: Whisper's prompt (its vocabulary, so
"Saturday" and the clinic's name are heard as such) and BM25 retrieval in the offline responder.

Plain Python on purpose: a campaign prompt is a few hundred words; no package is worth it."""

from __future__ import annotations

import math
import re
from collections import Counter

STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not now of off on once only or other our ours ourselves out over own same she should
so some such than that the their theirs them themselves then there these they this those through to
too under until up very was we were what when where which while who whom why will with would you your
yours yourself yourselves please tell know like want need get got let lets also may might must shall
i'm i'd i'll you're we're it's that's there's don't can't won't okay ok hi hello yes yeah
""".split())
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def stem(word: str) -> str:
    """A light suffix stripper (hours -> hour, opening -> open, booked -> book): enough to match a
    caller's wording to the prompt's without a stemming library."""
    for suffix in ("'s", "ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word


def tokens(text: str, keep_stopwords: bool = False) -> list[str]:
    words = _TOKEN.findall(text.lower().replace("\u2019", "'"))
    return [stem(w) for w in words if keep_stopwords or w not in STOPWORDS]


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


def whisper_prompt(text: str, max_words: int = 40) -> str:
    """The distinctive words of the campaign text, in order of first use: names, days, services.
    Whisper conditions on it as if it were the preceding transcript, which biases spelling and
    word choice toward the campaign's vocabulary without asking it to repeat anything."""
    seen: list[str] = []
    low: set[str] = set()
    for word in re.findall(r"[A-Za-z][A-Za-z'\-]+|\d+(?::\d+)?(?:\s?[ap]\.?m\.?)?", text):
        w = word.lower()
        if w in STOPWORDS or w in low or len(w) < 3:
            continue
        low.add(w)
        seen.append(word)
        if len(seen) >= max_words:
            break
    return ", ".join(seen) + "." if seen else ""


class BM25:
    """Okapi BM25 over a handful of sentences (k1=1.2, b=0.75)."""

    def __init__(self, docs: list[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.docs = docs
        self.toks = [tokens(d) for d in docs]
        self.k1, self.b = k1, b
        self.avg = sum(len(t) for t in self.toks) / max(1, len(self.toks))
        df: Counter[str] = Counter()
        for t in self.toks:
            df.update(set(t))
        n = len(docs)
        self.idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in df.items()}
        self.tf = [Counter(t) for t in self.toks]

    def scores(self, query: str) -> list[float]:
        q = tokens(query)
        out = []
        for tf, toks in zip(self.tf, self.toks, strict=True):
            s = 0.0
            norm = self.k1 * (1 - self.b + self.b * len(toks) / max(self.avg, 1e-9))
            for w in q:
                f = tf.get(w, 0)
                if f:
                    s += self.idf.get(w, 0.0) * f * (self.k1 + 1) / (f + norm)
            out.append(s)
        return out
