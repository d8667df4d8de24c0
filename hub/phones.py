"""Vietnamese mobile numbers, read with Google's libphonenumber (the `phonenumbers` package): what
can take an SMS or a Zalo message, in one E.164 spelling. Its numbering data is kept up to date by
its maintainers (network codes are reassigned now and then), not by us."""
from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneNumberType

from hub.domain.errors import DomainError, invalid

# What a person types: digits, a leading +, and the usual separators. Anything else (letters,
# full-width or other scripts' digits, which the library would quietly read) is refused.
_TYPED = re.compile(r"[0-9+ \t.\-()]+")
_MOBILE = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)


def normalize_phone(value: object) -> str:
    """'0912 345 678', '+84912345678', '84-912-345-678' → '+84912345678'; a number that is not a
    Vietnamese mobile (a landline, another country's, an unallocated network code) is refused."""
    if not isinstance(value, str) or not _TYPED.fullmatch(value.strip() or "x"):
        raise _bad_phone()
    try:
        number = phonenumbers.parse(value, "VN")
    except phonenumbers.NumberParseException:
        raise _bad_phone() from None
    if (number.country_code != 84 or not phonenumbers.is_valid_number(number)
            or phonenumbers.number_type(number) not in _MOBILE):
        raise _bad_phone()
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _bad_phone() -> DomainError:
    return invalid("invalid_phone", "Not a Vietnamese mobile number (e.g. 0912345678 or +84912345678).",
                   "Số điện thoại di động không hợp lệ (ví dụ 0912345678 hoặc +84912345678).")
