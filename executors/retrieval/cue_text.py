"""What spoken text means as words, the same at index and at query time (executors/retrieval/cue_search.py).

`words(text)`: NFKC, lower case, Traditional Chinese as Simplified (OpenCC t2s), apostrophes dropped
(don't = dont, o'clock = oclock), hyphens split (fire-fighters = fire fighters), British spellings
American (harbour = harbor), number words as digits (twelve = 12, twenty five = 25, seven fifteen
= 7 15 = 7.15 = 7:15). `stem(word)`: Snowball English. `keys(text)`: what a cue is found by (its
words' stems, the stems of adjacent words joined, so "light house" is found by lighthouse; CJK runs
as overlapping bigrams and their characters). `query_terms(text)`: the words a query asks for;
a CJK run is cut into words (jieba), each asked for as its bigrams.
"""
import functools
import logging
import re
import unicodedata
import warnings
from dataclasses import dataclass

CJK = ('\u1100-\u11ff\u2e80-\u2fdf\u3040-\u30ff\u3100-\u312f\u3130-\u318f\u31a0-\u31ff\u3400-\u4dbf'
       '\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f')
CJK_RUN = re.compile(f'[{CJK}]+')
TOKEN = re.compile(f'[{CJK}]+|[^\\W_]+(?:\\.\\d+)?')  # a CJK run, or letters/digits (7.15 kept for the split)
APOSTROPHES = re.compile("(?<=\\w)['\u2019\u02bc](?=\\w)")
STOPWORDS = frozenset('a an the and or of to in on at by for with from is are was were be been it this that these '
                      'those as i you he she we they do does did not no'.split())
UNITS = {w: i for i, w in enumerate('zero one two three four five six seven eight nine ten eleven twelve thirteen '
                                      'fourteen fifteen sixteen seventeen eighteen nineteen'.split())}
TENS = {w: 10 * i for i, w in enumerate('twenty thirty forty fifty sixty seventy eighty ninety'.split(), 2)}
BRITISH = {  # British spellings made American (+ any ending: colours, harbourside, realised); both sides alike,
    # so a rewrite that also catches another word (mumble -> momble) changes no match
    'colour': 'color', 'harbour': 'harbor', 'favour': 'favor', 'flavour': 'flavor', 'honour': 'honor',
    'labour': 'labor', 'neighbour': 'neighbor', 'behaviour': 'behavior', 'humour': 'humor', 'rumour': 'rumor',
    'vapour': 'vapor', 'armour': 'armor', 'parlour': 'parlor', 'odour': 'odor', 'vigour': 'vigor',
    'endeavour': 'endeavor', 'savour': 'savor', 'centre': 'center', 'theatre': 'theater', 'metre': 'meter',
    'litre': 'liter', 'fibre': 'fiber', 'grey': 'gray', 'programme': 'program', 'travell': 'travel',
    'cancell': 'cancel', 'jewell': 'jewel', 'defence': 'defense', 'offence': 'offense', 'licence': 'license',
    'realis': 'realiz', 'organis': 'organiz', 'recognis': 'recogniz', 'apologis': 'apologiz', 'analys': 'analyz',
    'emphasis': 'emphasiz', 'memoris': 'memoriz', 'criticis': 'criticiz', 'tyre': 'tire', 'plough': 'plow',
    'aluminium': 'aluminum', 'cheque': 'check', 'mum': 'mom', 'pyjama': 'pajama', 'moustache': 'mustache',
}
BRITISH_PREFIX = re.compile('^(' + '|'.join(sorted(BRITISH, key=len, reverse=True)) + ')')


@functools.lru_cache(maxsize=1)
def _simplified():
    import opencc

    return opencc.OpenCC('t2s')


@functools.lru_cache(maxsize=1)
def _stemmer():
    import snowballstemmer

    return snowballstemmer.stemmer('english')


@functools.lru_cache(maxsize=1)
def _jieba():
    with warnings.catch_warnings():  # its import warns that pkg_resources is deprecated: nothing a user can act on
        warnings.simplefilter('ignore', UserWarning)
        import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball English stem of a lower-case word (CJK and digits unchanged)."""
    if not word.isascii() or not word.isalpha():
        return word
    return _stemmer().stemWord(word)


def normal(text: str) -> str:
    """NFKC, lower case, Simplified Chinese, apostrophes and hyphens out."""
    text = unicodedata.normalize('NFKC', text).lower()
    if CJK_RUN.search(text):
        text = _simplified().convert(text)
    return APOSTROPHES.sub('', text)


def words(text: str) -> list[str]:
    """The words of `text` as both sides compare them (see the module docstring)."""
    found: list[str] = []
    for token in TOKEN.findall(normal(text)):
        if CJK_RUN.fullmatch(token):
            found.append(token)
            continue
        for part in token.split('.'):
            found.append(_american(part))
    return _numbers(found)


def _american(word: str) -> str:
    match = BRITISH_PREFIX.match(word)
    if not match:
        return word
    return BRITISH[match.group(1)] + word[match.end():]


def _numbers(tokens: list[str]) -> list[str]:
    """Number words as digits: twenty five -> 25, twelve -> 12, 07 -> 7."""
    out: list[str] = []
    for token in tokens:
        value = UNITS.get(token, TENS.get(token))
        if token.isdigit():
            value = int(token)
        if value is None:
            out.append(token)
        elif out and 0 < value < 10 and out[-1] in _TENS_DIGITS and token in UNITS:
            out[-1] = str(int(out[-1]) + value)
        else:
            out.append(str(value))
    return out


_TENS_DIGITS = frozenset(str(v) for v in TENS.values())


def cjk_keys(run: str) -> list[str]:
    """A CJK run's overlapping bigrams and its characters (a one-character query finds it exactly)."""
    return [run[i:i + 2] for i in range(len(run) - 1)] + list(run)


def keys(text: str) -> list[str]:
    """What a cue is found by: its words' stems, adjacent words joined (stemmed), CJK bigrams."""
    return keys_of(words(text))


def keys_of(tokens: list[str]) -> list[str]:
    """keys() of text whose words() are `tokens`."""
    found: list[str] = []
    for i, token in enumerate(tokens):
        if CJK_RUN.fullmatch(token):
            found += cjk_keys(token)
            continue
        found.append(stem(token))
        if i + 1 < len(tokens) and token.isalpha() and tokens[i + 1].isalpha() and tokens[i + 1].isascii():
            found.append(stem(token + tokens[i + 1]))
    return found


@dataclass(frozen=True)
class Term:
    """A word a query asks for: its form, its stem (what finds candidates), or for CJK its bigrams (all needed)."""

    word: str
    key: str
    parts: tuple[str, ...] = ()  # CJK: the bigrams (or the one character) that must all be in a cue

    @property
    def cjk(self) -> bool:
        return bool(self.parts)


def query_terms(text: str) -> list[Term]:
    """The terms of a query; stop words left out when it has others."""
    terms: list[Term] = []
    for token in words(text):
        if CJK_RUN.fullmatch(token):
            for word in _jieba().cut(token):
                parts = tuple(word[i:i + 2] for i in range(len(word) - 1)) or (word,)
                terms.append(Term(word, parts[0], parts))
        else:
            terms.append(Term(token, stem(token)))
    content = [t for t in terms if t.word not in STOPWORDS]
    return content or terms
