"""What a reaction may be: one emoji, as one user-perceived character (docs/protocol.md).

The fixed set (QUICK) is what the web UI's picker offers first; any other single emoji is
accepted too. "Single emoji" is checked against the shapes Unicode's emoji sequences take
(UTS #51), with no dependency:

    emoji    := flag | keycap | tag_seq | zwj_seq
    flag     := RI RI                                  (regional indicators: 🇫🇷)
    keycap   := [0-9#*] FE0F? 20E3                     (1️⃣)
    tag_seq  := 1F3F4 TAG+ E007F                       (🏴 subdivision flags)
    zwj_seq  := element (200D element)*                (👩‍💻, 👨‍👩‍👧)
    element  := pictographic FE0F? modifier?           (❤️, 👍🏽)

`pictographic` is an approximation of Unicode's Extended_Pictographic property by its blocks.
Text, several emoji, whitespace, control and format characters other than those above are refused
with `invalid_emoji`.
"""

from core.errors import ApplicationError

# The picker's quick set, in its order.
QUICK = ("👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀", "✅", "👎")

MAX_CODEPOINTS = 16  # the longest RGI sequences (families, subdivision flags) are shorter

_VS16, _ZWJ, _KEYCAP, _BLACK_FLAG, _CANCEL_TAG = 0xFE0F, 0x200D, 0x20E3, 0x1F3F4, 0xE007F

# Blocks and single code points holding Extended_Pictographic characters.
_PICTOGRAPHIC = (
    (0x00A9, 0x00A9),
    (0x00AE, 0x00AE),
    (0x203C, 0x203C),
    (0x2049, 0x2049),
    (0x2122, 0x2122),
    (0x2139, 0x2139),
    (0x2194, 0x2199),
    (0x21A9, 0x21AA),
    (0x231A, 0x231B),
    (0x2328, 0x2328),
    (0x2388, 0x2388),
    (0x23CF, 0x23CF),
    (0x23E9, 0x23F3),
    (0x23F8, 0x23FA),
    (0x24C2, 0x24C2),
    (0x25AA, 0x25AB),
    (0x25B6, 0x25B6),
    (0x25C0, 0x25C0),
    (0x25FB, 0x25FE),
    (0x2600, 0x27BF),  # Miscellaneous Symbols, Dingbats
    (0x2934, 0x2935),
    (0x2B05, 0x2B07),
    (0x2B1B, 0x2B1C),
    (0x2B50, 0x2B50),
    (0x2B55, 0x2B55),
    (0x3030, 0x3030),
    (0x303D, 0x303D),
    (0x3297, 0x3297),
    (0x3299, 0x3299),
    (0x1F000, 0x1F0FF),  # Mahjong, Domino, Playing cards
    (0x1F10D, 0x1F10F),
    (0x1F12F, 0x1F12F),
    (0x1F16C, 0x1F171),
    (0x1F17E, 0x1F17F),
    (0x1F18E, 0x1F18E),
    (0x1F191, 0x1F19A),
    (0x1F1AD, 0x1F1E5),
    (0x1F201, 0x1F20F),
    (0x1F21A, 0x1F21A),
    (0x1F22F, 0x1F22F),
    (0x1F232, 0x1F23A),
    (0x1F23C, 0x1F23F),
    (0x1F249, 0x1F3FA),  # Misc Symbols and Pictographs (skin tones excluded below)
    (0x1F400, 0x1F53D),
    (0x1F546, 0x1F64F),  # ... Emoticons
    (0x1F680, 0x1F6FF),  # Transport and Map
    (0x1F774, 0x1F77F),
    (0x1F7D5, 0x1F7FF),
    (0x1F80C, 0x1F80F),
    (0x1F848, 0x1F84F),
    (0x1F85A, 0x1F85F),
    (0x1F888, 0x1F88F),
    (0x1F8AE, 0x1F8FF),
    (0x1F90C, 0x1F93A),
    (0x1F93C, 0x1F945),
    (0x1F947, 0x1FAFF),  # Supplemental Symbols and Pictographs, Symbols and Pictographs Extended-A
    (0x1FC00, 0x1FFFD),
)


def _pictographic(code: int) -> bool:
    if 0x1F3FB <= code <= 0x1F3FF:  # skin tone modifiers are not emoji on their own
        return False
    return any(low <= code <= high for low, high in _PICTOGRAPHIC)


def _regional(code: int) -> bool:
    return 0x1F1E6 <= code <= 0x1F1FF


def _modifier(code: int) -> bool:
    return 0x1F3FB <= code <= 0x1F3FF


def _tag(code: int) -> bool:
    return 0xE0020 <= code <= 0xE007E


def is_single_emoji(text: str) -> bool:
    codes = [ord(char) for char in text]
    if not codes or len(codes) > MAX_CODEPOINTS:
        return False
    if len(codes) == 2 and _regional(codes[0]) and _regional(codes[1]):
        return True
    if chr(codes[0]) in "0123456789#*":
        return codes[1:] in ([_KEYCAP], [_VS16, _KEYCAP])
    if codes[0] == _BLACK_FLAG and len(codes) > 2 and _tag(codes[1]):
        return codes[-1] == _CANCEL_TAG and all(_tag(code) for code in codes[1:-1])
    index = 0
    while True:  # element (ZWJ element)*
        if index >= len(codes) or not _pictographic(codes[index]):
            return False
        index += 1
        if index < len(codes) and codes[index] == _VS16:
            index += 1
        if index < len(codes) and _modifier(codes[index]):
            index += 1
        if index == len(codes):
            return True
        if codes[index] != _ZWJ:
            return False
        index += 1


class InvalidEmoji(ApplicationError):
    code = "invalid_emoji"
    status = 400
    message = "A reaction is one emoji."


def clean_emoji(value: object) -> str:
    """The emoji a reaction names, or `invalid_emoji`. A quick-set emoji written without its
    variation selector (U+FE0F) is the quick-set one, so "❤" and "❤️" are one reaction."""
    if not isinstance(value, str) or not is_single_emoji(value):
        raise InvalidEmoji(fields={"emoji": ["Must be a single emoji."]})
    bare = value.replace(chr(_VS16), "")
    for quick in QUICK:
        if quick.replace(chr(_VS16), "") == bare:
            return quick
    return value
