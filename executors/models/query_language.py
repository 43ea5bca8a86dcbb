"""Which language a search query is in, told by its characters: whether it is plain English (for
CLIP's own text tower) and a best-effort ISO 639-1 tag for QueryDoc.language.

The rule, by script and never by vocabulary:

- plain English: every character is ASCII (letters, digits, punctuation, whitespace) or one of the
  typographic marks that English text picks up from phones and word processors (curly quotes,
  dashes, ellipsis, bullet, no-break space, degree, multiplication sign, pound and euro signs).
  Any other character (an accented letter, a CJK character, Arabic, an emoji) makes the query
  "not plain English": the multilingual tower, trained on English too, handles it.
- so a query in French or Spanish typed without accents counts as English (CLIP gets it, as it
  would have before), and "café" sends an English query to the multilingual tower: both rare,
  both still answered.
- the tag is the script's main language (Han -> zh, Han with kana -> ja, Hangul -> ko, Arabic ->
  ar, Cyrillic -> ru, ...), refined by a few letters only one language uses (ñ -> es, ß -> de,
  پ -> fa, ї -> uk, ...); 'en' for plain English; '' when the script says nothing (emoji alone, or
  Latin letters with accents that several languages share).
"""
import unicodedata

TYPOGRAPHIC = set('\u2018\u2019\u201a\u201c\u201d\u201e'  # curly quotes
                  '\u2013\u2014\u2026\u2022\u00b7'  # dashes, ellipsis, bullets
                  '\u00a0\u2009\u202f'  # no-break and thin spaces
                  '\u00b0\u00d7\u00a3\u20ac')  # degree, multiplication, pound, euro

# (first, last, script): code point ranges of the scripts a tag can be told from
SCRIPT_RANGES = (
    (0x0370, 0x03FF, 'greek'), (0x0400, 0x052F, 'cyrillic'), (0x0590, 0x05FF, 'hebrew'),
    (0x0600, 0x06FF, 'arabic'), (0x0750, 0x077F, 'arabic'), (0x08A0, 0x08FF, 'arabic'),
    (0x0900, 0x097F, 'devanagari'), (0x0980, 0x09FF, 'bengali'), (0x0E00, 0x0E7F, 'thai'),
    (0x10A0, 0x10FF, 'georgian'), (0x1100, 0x11FF, 'hangul'), (0x3040, 0x309F, 'kana'),
    (0x30A0, 0x30FF, 'kana'), (0x31F0, 0x31FF, 'kana'), (0x3130, 0x318F, 'hangul'),
    (0x3400, 0x4DBF, 'han'), (0x4E00, 0x9FFF, 'han'), (0xAC00, 0xD7AF, 'hangul'), (0xF900, 0xFAFF, 'han'),
    (0xFB50, 0xFDFF, 'arabic'), (0xFE70, 0xFEFF, 'arabic'), (0xFF66, 0xFF9F, 'kana'), (0x20000, 0x2FA1F, 'han'),
)
SCRIPT_LANGUAGE = {'greek': 'el', 'cyrillic': 'ru', 'hebrew': 'he', 'arabic': 'ar', 'devanagari': 'hi',
                   'bengali': 'bn', 'thai': 'th', 'georgian': 'ka', 'hangul': 'ko', 'kana': 'ja', 'han': 'zh'}
# letters that, within their script, belong to one language only
DISTINCTIVE = {'ñ': 'es', '¿': 'es', '¡': 'es', 'ß': 'de', 'ã': 'pt', 'õ': 'pt', 'ğ': 'tr', 'ş': 'tr', 'ı': 'tr',
               'ł': 'pl', 'ą': 'pl', 'ę': 'pl', 'ő': 'hu', 'ű': 'hu', 'ř': 'cs', 'ů': 'cs', 'ě': 'cs', 'đ': 'vi',
               'ơ': 'vi', 'ư': 'vi', 'œ': 'fr', 'ї': 'uk', 'є': 'uk', 'ґ': 'uk',
               'і': 'uk', 'ў': 'be', 'پ': 'fa', 'چ': 'fa', 'ژ': 'fa', 'گ': 'fa', 'ی': 'fa', 'ک': 'fa', 'ٹ': 'ur',
               'ڈ': 'ur', 'ڑ': 'ur', 'ں': 'ur', 'ے': 'ur'}


def is_plain_english(text: str) -> bool:
    """True when every character of `text` is ASCII or a typographic mark of English text (see the module)."""
    return all(ord(char) < 128 or char in TYPOGRAPHIC for char in text)


def query_language(text: str) -> str:
    """A best-effort ISO 639-1 tag of `text` from its characters ('en', 'zh', 'ja', ...); '' when unknown."""
    if is_plain_english(text):
        return 'en' if any(char.isalpha() for char in text) else ''
    counts: dict[str, int] = {}
    for char in text:
        script = _script(char)
        if script:
            counts[script] = counts.get(script, 0) + 1
    if 'kana' in counts:  # Japanese writes Han characters among its kana
        return 'ja'
    main = max(counts, key=counts.get) if counts else 'latin'  # the script with the most letters
    for char in unicodedata.normalize('NFC', text.lower()):
        if char in DISTINCTIVE and (_script(char) or 'latin') == main:
            return DISTINCTIVE[char]
    return SCRIPT_LANGUAGE.get(main, '')


def _script(char: str) -> str:
    """The script of `char` among SCRIPT_RANGES, '' for any other (Latin, digits, emoji, punctuation)."""
    point = ord(char)
    for first, last, script in SCRIPT_RANGES:
        if first <= point <= last:
            return script
    return ''
