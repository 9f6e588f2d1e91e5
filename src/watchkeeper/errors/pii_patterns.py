"""Value patterns for PII scrubbing: find secrets inside strings, whatever key they sit under.

All work is linear in the input: every regex starts at a literal or at the beginning of a run
(negative look-behind), every repetition that could backtrack is bounded, and e-mail local
parts are found by walking back from the "@". Candidates that a regex alone cannot judge (card
numbers, Bitcoin addresses, IP addresses) are confirmed by a checksum or a parser in the
replacement callback, so order ids, hashes and clock times survive.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

FILTERED = "[Filtered]"

# Frequent patterns start with a literal or a character class, which lets the regex engine skip
# ahead cheaply, and check "start of a run" with a look-behind placed after the first character.
# A truncated block (no END line) is filtered up to the end of the string.
_PEM = re.compile(
    r"-----BEGIN[A-Z ]{0,40}PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z ]{0,40}PRIVATE KEY-----|\Z)"
)
# At least 8 token characters, so prose like "bearer of bad news" is left alone.
_BEARER = re.compile(r"\b((?i:bearer)\s+)[A-Za-z0-9._~+/-]{8,}=*")
_URL_AUTH = re.compile(r"(?<=://)([^\s/:@]{1,256}):[^\s/@]{1,256}@")
# Only the domain is matched by regex; the local part is found by walking back from the "@" (see
# _replace_emails), which keeps the work linear however the addresses are glued together.
_EMAIL_DOMAIN = re.compile(r"@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?![\w-])")
_EMAIL_LOCAL_PUNCTUATION = frozenset(".%+-_")
_ETH = re.compile(r"0x(?<![0-9A-Za-z]0x)[0-9a-fA-F]{40}(?![0-9A-Za-z])")
_BECH32_CANDIDATE = re.compile(r"(?<![0-9A-Za-z])(?:bc1|BC1)[02-9ac-hj-np-zAC-HJ-NP-Z]{11,71}(?![0-9A-Za-z])")
_BASE58_CANDIDATE = re.compile(r"[13](?<![0-9A-Za-z].)[1-9A-HJ-NP-Za-km-z]{25,34}(?![0-9A-Za-z])")
# Issuer digits 2-6 only: real cards start there, while millisecond/nanosecond timestamps
# (13-19 digits starting with 1) would otherwise be Luhn-valid one time in ten.
# Grouped forms must use one separator throughout: 4-4-4-4(-3) and Amex/Diners 4-6-5/4-6-4.
_CARD_CANDIDATE = re.compile(
    r"[2-6](?<![\w-].)(?:\d{12,18}"
    r"|\d{3}([ -])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{3})?"
    r"|\d{3}([ -])\d{6}\2\d{4,5})(?![\w-])"
)
# Octet ranges are checked in the callback; a regex alternation for them is much slower.
_IPV4_CANDIDATE = re.compile(r"\d(?<![\w.].)\d{0,2}(?:\.\d{1,3}){3}(?!\w|\.\d)")
# Loose candidate; ipaddress decides, so clock times like 12:30:45 stay.
_IPV6_CANDIDATE = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:.])")
# A string's shape maps digits to "0", ASCII letters to "a", space and dash to "-", the rest to ".".
_SHAPE = bytes(
    ord("0" if chr(byte).isdigit() else "a" if chr(byte).isalpha() else "-" if chr(byte) in " -" else ".")
    if byte < 128
    else ord(".")
    for byte in range(256)
)
_ALNUM_RUN = "a" * 26
_CARD_RUN = "0" * 13
_CARD_GROUPS = "0000-0000"

_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX = {char: index for index, char in enumerate(_BASE58)}
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_GENERATORS = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
# bech32 (BIP 173, segwit v0) and bech32m (BIP 350, taproot) checksum constants.
_BECH32_CONSTANTS = (1, 0x2BC830A3)

_IPV4_EXACT = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})")
_FORWARDED_NODE = re.compile(r'(?i)(\b(?:for|by)=)("?)([^;,"\s]+)')


# What scrubbing leaves in place of a value (IP addresses are anonymised instead).
PLACEHOLDERS = frozenset({FILTERED, "[email]", "[creditcard]", "[wallet]"})


def scrub_text(text: str, *, ips: bool, patterns: bool = True) -> str:
    """Replace PII found inside ``text``, keeping the rest of the string: secrets, e-mail addresses,
    cards and wallets when ``patterns``, IP addresses (anonymised) when ``ips``.

    >>> scrub_text("user bob@example.com logged in", ips=True)
    'user [email] logged in'
    >>> scrub_text("bob@example.com from 203.0.113.57", ips=True, patterns=False)
    'bob@example.com from 203.0.113.0'
    """
    if not patterns:
        if not ips or len(text) < 6 or text.isalpha():
            return text
        return _scrub_ips(text)
    # Substring tests decide which regexes run at all, and a regex searches before it substitutes:
    # most strings in an event need no regex, a regex scan costs about ten times more per
    # character than a substring test, and sub() costs about twice search().
    # Every pattern needs a digit, "@", ":", "-" or white space: a word (a common value) needs nothing.
    if len(text) < 6 or text.isalpha():
        return text
    if ("earer" in text or "EARER" in text) and _BEARER.search(text):
        text = _BEARER.sub(_bearer, text)
    if "PRIVATE KEY" in text and _PEM.search(text):
        text = _PEM.sub(FILTERED, text)
    if "@" in text:
        if "://" in text and _URL_AUTH.search(text):
            text = _URL_AUTH.sub(_url_auth, text)
        text = _replace_emails(text)
    # The shape shows where digit and alphanumeric runs are. Going through bytes is much faster
    # than str.translate, and searching str faster than bytes. A plain encode() is the fast path;
    # lone surrogates (JSON allows them) make it raise, and only then is surrogatepass needed.
    try:
        raw = text.encode()
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogatepass")
    shape = raw.translate(_SHAPE).decode("ascii")
    # Every remaining pattern holds a digit (real IPv6 addresses do too).
    if "0" not in shape:
        return text
    # Python reprs hold "at 0x7f..." addresses near the end: too short for a wallet.
    if "0x" in text and len(text) - text.find("0x") >= 42 and _ETH.search(text):
        text = _ETH.sub("[wallet]", text)
    if ("bc1" in text or "BC1" in text) and _BECH32_CANDIDATE.search(text):
        text = _BECH32_CANDIDATE.sub(_bech32, text)
    # A base58 address starts with "1" or "3": two substring tests spare the costlier run test.
    if (
        len(text) >= 26
        and ("1" in text or "3" in text)
        and _ALNUM_RUN in shape.replace("0", "a")
        and _BASE58_CANDIDATE.search(text)
    ):
        text = _BASE58_CANDIDATE.sub(_base58, text)
    # Every card layout holds 13 digits in a row or "dddd dddd".
    if (_CARD_RUN in shape or _CARD_GROUPS in shape) and _CARD_CANDIDATE.search(text):
        text = _CARD_CANDIDATE.sub(_card, text)
    return _scrub_ips(text) if ips else text


def _scrub_ips(text: str) -> str:
    # Most strings hold no "." or ":" at all, which one substring test tells faster than count().
    if "." in text and text.count(".") >= 3 and _IPV4_CANDIDATE.search(text):
        text = _IPV4_CANDIDATE.sub(_ipv4, text)
    if ":" in text and ("::" in text or text.count(":") >= 7) and _IPV6_CANDIDATE.search(text):
        text = _IPV6_CANDIDATE.sub(_ipv6, text)
    return text


def is_card_number(value: int) -> bool:
    """Tell whether an integer looks like a payment card number (issuer digit, length, Luhn).

    >>> is_card_number(4111111111111111), is_card_number(4111111111111112)
    (True, False)
    """
    if not 10**12 <= value < 10**19:
        return False
    digits = str(value)
    return digits[0] in "23456" and _luhn_valid(digits)


def anonymize_ip(value: str) -> str:
    """Zero the host part of IP addresses: the last octet of IPv4, the last 80 bits of IPv6.

    Accepts ``ip``, ``ip:port``, ``[ipv6]:port`` and comma-separated lists such as
    X-Forwarded-For; anything that is not an address is returned unchanged.

    >>> anonymize_ip("203.0.113.57, [2001:db8:85a3:8d3:1319:8a2e:370:7348]:443")
    '203.0.113.0, [2001:db8:85a3::]:443'
    """
    if "," in value:
        return ",".join(_anonymize_padded(part) for part in value.split(","))
    return _anonymize_padded(value)


def anonymize_forwarded(value: str) -> str:
    """Anonymise the ``for=`` and ``by=`` nodes of an RFC 7239 Forwarded header.

    >>> anonymize_forwarded('for="[2001:db8:cafe::17]:4711";proto=https, for=192.0.2.60')
    'for="[2001:db8:cafe::]:4711";proto=https, for=192.0.2.0'
    """
    return _FORWARDED_NODE.sub(lambda m: m.group(1) + m.group(2) + _anonymize_address(m.group(3)), value)


def _replace_emails(text: str) -> str:
    pieces: list[str] = []
    done = 0
    for domain in _EMAIL_DOMAIN.finditer(text):
        start = at = domain.start()
        # Stopping at the previous address keeps this linear and catches "a@b.io.c@d.io".
        while start > done and (text[start - 1].isalnum() or text[start - 1] in _EMAIL_LOCAL_PUNCTUATION):
            start -= 1
        if start < at:
            pieces += (text[done:start], "[email]")
            done = domain.end()
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def _bearer(match: re.Match[str]) -> str:
    return match.group(1) + FILTERED


def _url_auth(match: re.Match[str]) -> str:
    return f"{match.group(1)}:{FILTERED}@"


def _bech32(match: re.Match[str]) -> str:
    return "[wallet]" if _bech32_valid(match.group()) else match.group()


def _base58(match: re.Match[str]) -> str:
    return "[wallet]" if _base58check_valid(match.group()) else match.group()


def _card(match: re.Match[str]) -> str:
    digits = match.group().replace(" ", "").replace("-", "")
    return "[creditcard]" if 13 <= len(digits) <= 19 and _luhn_valid(digits) else match.group()


def _ipv4(match: re.Match[str]) -> str:
    text = match.group()
    if any(int(octet) > 255 for octet in text.split(".")):
        return text
    return text[: text.rfind(".")] + ".0"


def _ipv6(match: re.Match[str]) -> str:
    return _anonymize_address(match.group())


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _base58check_valid(text: str) -> bool:
    number = 0
    for char in text:
        number = number * 58 + _BASE58_INDEX[char]
    leading_zeros = len(text) - len(text.lstrip("1"))
    raw = bytes(leading_zeros) + number.to_bytes((number.bit_length() + 7) // 8, "big")
    # Version byte 0x00 is P2PKH ("1..."), 0x05 is P2SH ("3...").
    if len(raw) != 25 or raw[0] not in (0, 5):
        return False
    checksum = hashlib.sha256(hashlib.sha256(raw[:21]).digest()).digest()[:4]
    return checksum == raw[21:]


def _bech32_valid(text: str) -> bool:
    if text != text.lower() and text != text.upper():
        return False
    data = [_BECH32.find(char) for char in text.lower()[3:]]
    if -1 in data:
        return False
    checksum = 1
    for value in [3, 3, 0, 2, 3, *data]:  # "bc" expanded as BIP 173 prescribes, then the data
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for bit, generator in enumerate(_BECH32_GENERATORS):
            if (top >> bit) & 1:
                checksum ^= generator
    return checksum in _BECH32_CONSTANTS


def _anonymize_padded(part: str) -> str:
    core = part.strip()
    masked = _anonymize_address(core)
    return part if masked == core else part.replace(core, masked, 1)


def _anonymize_address(text: str) -> str:
    masked = _mask(text)
    if masked is not None:
        return masked
    if text.startswith("["):
        inner, bracket, rest = text[1:].partition("]")
        masked = _mask(inner)
        if bracket and masked is not None and (not rest or (rest[0] == ":" and rest[1:].isdigit())):
            return f"[{masked}]{rest}"
        return text
    host, colon, port = text.rpartition(":")
    if colon and port.isdigit() and host.count(".") == 3:
        masked = _mask(host)
        if masked is not None:
            return f"{masked}:{port}"
    return text


def _mask(text: str) -> str | None:
    # Plain IPv4 is by far the most common input and ipaddress is slow to parse it.
    if (dotted := _IPV4_EXACT.fullmatch(text)) is not None:
        if all(int(octet) <= 255 for octet in dotted.groups()):
            return dotted.group(1) + "." + dotted.group(2) + "." + dotted.group(3) + ".0"
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv4Address):
        return str(ipaddress.IPv4Address(int(address) & 0xFFFFFF00))
    if address.ipv4_mapped is not None:
        # Zeroing 80 bits would also wipe the "ffff" marker and leave just "::".
        return f"::ffff:{_mask(str(address.ipv4_mapped))}"
    return str(ipaddress.IPv6Address(int(address) >> 80 << 80))
