"""Who takes a number: the mix of fields, and made-up citizens with valid identities.

Shared by the live demo (`hub.demo`) and the trace simulator, so both see the same population.
"""
from __future__ import annotations

import random

from hub.domain.config import Branch

# Relative demand per field; land and civil status are the busiest at every branch.
FIELD_WEIGHTS = {"dat-dai": 24, "ho-tich": 18, "tu-phap-chung-thuc": 12, "cu-tru": 8,
                 "dang-ky-kinh-doanh": 8, "giao-thong-van-tai": 7, "xay-dung": 5, "lao-dong-viec-lam": 4,
                 "dau-tu": 2, "nong-nghiep-moi-truong": 2, "y-te": 2, "giao-duc": 2,
                 "van-hoa-the-thao-du-lich": 1.5}
OTHER_FIELD_WEIGHT = 2          # a field of a custom configuration that the table does not know

WITH_PHONE, ELDERLY = 0.5, 0.12     # shares of citizens who give a mobile, who are 75 or older
PROVINCES = ("001",) * 6 + ("031", "033", "034", "036", "038", "040")   # CCCD birth-place codes
MOBILE = ("032", "033", "034", "035", "036", "037", "038", "039", "070", "076", "077", "078", "079",
          "081", "082", "083", "084", "085", "086", "087", "088", "090", "091", "093", "094", "096",
          "097", "098")


def field_weights(branch: Branch) -> tuple[list[str], list[float]]:
    """The branch's fields, in configuration order, and their relative demand."""
    fields = list(branch.services)
    return fields, [FIELD_WEIGHTS.get(f, OTHER_FIELD_WEIGHT) for f in fields]


def fake_citizen(rng: random.Random, year: int) -> tuple[str, str | None]:
    """A valid CCCD (birth place, sex and century, year of birth, serial) and maybe a mobile."""
    age = rng.randint(75, 92) if rng.random() < ELDERLY else rng.randint(18, 74)
    born = year - age
    cccd = f"{rng.choice(PROVINCES)}{(0 if born < 2000 else 2) + rng.randint(0, 1)}{born % 100:02d}" \
           f"{rng.randrange(10**6):06d}"
    phone = f"{rng.choice(MOBILE)}{rng.randrange(10**7):07d}" if rng.random() < WITH_PHONE else None
    return cccd, phone
