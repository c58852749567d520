"""Record families rendered in several formats and locales: the shadow regime of the paper.

A record *style* is (family, format, locale): the family fixes the content (fields and label), the
format the layout, the locale faker's names, companies and places. The provider's public pool
holds, for each family, only styles whose format AND locale differ from the organization of that
family; other families' public styles cover that format and that locale. An organization's
records are therefore a novel combination of factors the public pool covers separately: a
provider fine-tuning the LLM on public same-family records misses the organization's format and
locale, which only its TinyLM update carries.

``shipping`` has no public style at all (the fully held-out family: the stretch regime).
Public and organization records use disjoint faker seeds (:func:`style_seed`), and no style is
both public and an organization's (:data:`ORG_STYLES` vs :func:`public_styles`).
"""

from __future__ import annotations

import datetime
import hashlib
import random
from collections.abc import Callable
from functools import cache
from typing import NamedTuple

from faker import Faker

from gt_secure.data.organizations import BANK, HOSPITAL, LAW
from gt_secure.errors import InvalidFieldError

SHIPPING = {
    "express": ["next-day air", "overnight courier", "priority express"],
    "freight": ["pallet freight", "container load", "bulk freight"],
    "parcel": ["ground parcel", "standard parcel", "small packet"],
}
FAMILY_LABELS: dict[str, dict[str, list[str]]] = {
    "hospital": HOSPITAL, "bank": BANK, "law": LAW, "shipping": SHIPPING,
}
FORMATS = ("prose", "fields", "pipe")
LOCALES = ("en_US", "en_GB", "de_DE")
_START, _END = datetime.date(2015, 1, 1), datetime.date(2024, 12, 31)


class Style(NamedTuple):
    family: str
    format: str
    locale: str

    @property
    def name(self) -> str:
        return f"{self.family}/{self.format}/{self.locale}"


# Each organization: a (format, locale) its family never shows in public (diagonal design).
ORG_STYLES: dict[str, Style] = {
    "hospital": Style("hospital", "fields", "de_DE"),
    "bank": Style("bank", "pipe", "en_US"),
    "law": Style("law", "prose", "en_GB"),
    "logistics": Style("shipping", "pipe", "en_GB"),  # held-out family (stretch row)
}
HELD_OUT_FAMILIES = ("shipping",)
# Organizations whose records mix public styles in their own proportions (a novel combination of
# publicly covered factors, the other design): each style's records come from the same
# generator as the public pool but with the organization's own seeds. The first style is the
# organization's "family" for the public same-family baseline.
ORG_MIXTURES: dict[str, dict[Style, float]] = {
    "clinic": {Style("hospital", "prose", "en_US"): 0.6, Style("bank", "fields", "en_GB"): 0.4},
    "insurer": {Style("bank", "prose", "de_DE"): 0.5, Style("law", "fields", "en_US"): 0.5},
    "registry": {Style("law", "pipe", "de_DE"): 0.7, Style("hospital", "pipe", "en_GB"): 0.3},
}


def org_family(org: str) -> str:
    """The family an organization's records (mostly) belong to."""
    if org in ORG_MIXTURES:
        return next(iter(ORG_MIXTURES[org])).family
    if org not in ORG_STYLES:
        raise InvalidFieldError("org", org, f"one of {[*ORG_STYLES, *ORG_MIXTURES]}")
    return ORG_STYLES[org].family


def public_styles() -> tuple[Style, ...]:
    """Styles the provider may use: per public family, formats and locales not its org's."""
    out = []
    for own in ORG_STYLES.values():
        if own.family in HELD_OUT_FAMILIES:
            continue
        out += [
            Style(own.family, fmt, loc)
            for fmt in FORMATS
            for loc in LOCALES
            if fmt != own.format and loc != own.locale
        ]
    return tuple(out)


def _fields(family: str, fake: Faker, rng: random.Random) -> tuple[list[tuple[str, str]], str]:
    """(field name, value) pairs of one record and its label."""
    label = rng.choice(list(FAMILY_LABELS[family]))
    item = rng.choice(FAMILY_LABELS[family][label])
    date = str(fake.date_between(start_date=_START, end_date=_END))
    if family == "hospital":
        values = [("patient", fake.name()), ("age", str(rng.randint(18, 90))), ("admitted", date),
                  ("complaint", item), ("physician", f"Dr. {fake.last_name()}"),
                  ("ward", fake.city())]
    elif family == "bank":
        values = [("date", date), ("payer", fake.name()),
                  ("amount", f"{rng.randint(3, 900)}.{rng.randint(0, 99):02d}"),
                  ("payee", f"{fake.company()} {item}"),
                  ("account", str(fake.random_number(4, True)))]
    elif family == "law":
        values = [("clause", str(rng.randint(1, 40))), ("party", fake.company()),
                  ("counterparty", fake.name()), ("term", item), ("signed", fake.city()),
                  ("date", date)]
    else:  # shipping
        values = [("tracking", f"{rng.randint(10**8, 10**9 - 1)}"), ("sender", fake.company()),
                  ("recipient", fake.name()), ("service", item), ("destination", fake.city()),
                  ("shipped", date)]
    return values, label


_PROSE: dict[str, Callable[[dict[str, str]], str]] = {
    "hospital": lambda v: (f"Patient {v['patient']}, age {v['age']}, was admitted on "
                           f"{v['admitted']} with {v['complaint']} to the {v['ward']} ward. "
                           f"Attending physician {v['physician']}."),
    "bank": lambda v: (f"On {v['date']} {v['payer']} paid ${v['amount']} to {v['payee']} "
                       f"from account ending {v['account']}."),
    "law": lambda v: (f"Clause {v['clause']}. Between {v['party']} and {v['counterparty']}: "
                      f"{v['term']}. Signed in {v['signed']} on {v['date']}."),
    "shipping": lambda v: (f"Parcel {v['tracking']} from {v['sender']} to {v['recipient']} "
                           f"went by {v['service']} to {v['destination']} on {v['shipped']}."),
}


def render(style: Style, values: list[tuple[str, str]], label: str) -> str:
    """One record text in ``style``'s format, ending with its label."""
    if style.format == "prose":
        body = _PROSE[style.family](dict(values))
        return f"{body} Class: {label}."
    if style.format == "fields":
        body = "; ".join(f"{k.upper()}={v}" for k, v in values)
        return f"{body}; CLASS={label}"
    return " | ".join([style.family[:4].upper(), *(v for _, v in values), label])


def style_seed(style: Style, split: str) -> int:
    """Faker seed of a style's split; organizations' and public seeds never coincide."""
    if split not in ("public", "train", "validation", "test"):
        raise InvalidFieldError("split", split, "one of ['public', 'train', 'validation', 'test']")
    digest = hashlib.sha256(f"{style.name}|{split}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


@cache
def _fakers() -> dict[str, Faker]:
    return {loc: Faker(loc) for loc in LOCALES}


def style_records(style: Style, n: int, seed: int) -> list[str]:
    """``n`` record texts of ``style``, reproducible from ``seed``."""
    for field, value, allowed in (("family", style.family, FAMILY_LABELS),
                                  ("format", style.format, FORMATS),
                                  ("locale", style.locale, LOCALES)):
        if value not in allowed:
            raise InvalidFieldError(f"style.{field}", value, f"one of {list(allowed)}")
    fake = _fakers()[style.locale]
    fake.seed_instance(seed)
    rng = random.Random(seed)
    return [render(style, *_fields(style.family, fake, rng)) for _ in range(n)]


def org_records(org: str, split: str, n: int) -> list[str]:
    """Records of organization ``org`` (a key of :data:`ORG_STYLES`) in split ``split``."""
    if split == "public":
        raise InvalidFieldError("split", split, "'train', 'validation' or 'test'")
    if org in ORG_MIXTURES:
        rng = random.Random(style_seed(Style(org, "mix", "-"), split))
        texts: list[str] = []
        for style, weight in ORG_MIXTURES[org].items():
            count = round(n * weight) if style != next(reversed(ORG_MIXTURES[org])) \
                else n - len(texts)
            texts += style_records(style, count, style_seed(style, f"{split}") ^ 0x5EED)
        rng.shuffle(texts)
        return texts
    if org not in ORG_STYLES:
        raise InvalidFieldError("org", org, f"one of {[*ORG_STYLES, *ORG_MIXTURES]}")
    style = ORG_STYLES[org]
    return style_records(style, n, style_seed(style, split))


@cache
def public_pool(style: Style, n: int) -> tuple[str, ...]:
    """The provider's public records of ``style`` (refuses an organization's style)."""
    if style not in public_styles():
        raise InvalidFieldError("style", style.name, "a public style (see public_styles())")
    return tuple(style_records(style, n, style_seed(style, "public")))


def family_public_records(family: str, n: int, seed: int) -> list[str]:
    """``n`` public records of ``family`` drawn evenly from its public styles."""
    styles = [s for s in public_styles() if s.family == family]
    if not styles:
        raise InvalidFieldError("family", family, "a family with public styles")
    rng = random.Random(seed)
    per = -(-n // len(styles))
    texts = [t for s in styles for t in rng.sample(public_pool(s, max(per, 2048)), per)]
    rng.shuffle(texts)
    return texts[:n]
