"""ISO 4217 currency codes and their minor units."""

from __future__ import annotations

from decimal import Decimal

# Active ISO 4217 codes (list of 2024), grouped by number of minor-unit digits.
_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"
_TWO = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV "
    "BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK "
    "DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL "
    "HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL "
    "MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO "
    "NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK "
    "SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS "
    "UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG"
)
_MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(_TWO.split(), 2),
    **dict.fromkeys(_ZERO.split(), 0),
    **dict.fromkeys(_THREE.split(), 3),
    **dict.fromkeys(_FOUR.split(), 4),
}


def minor_units(currency: str) -> int | None:
    """Return the number of decimal places of ``currency``, or None if unknown.

    >>> minor_units("EUR"), minor_units("JPY"), minor_units("XYZ")
    (2, 0, None)
    """
    return _MINOR_UNITS.get(currency)


def to_minor(amount: Decimal, currency: str) -> int:
    """Convert a validated amount to an integer count of minor units.

    >>> to_minor(Decimal("12.30"), "EUR")
    1230
    """
    return int(amount.scaleb(_MINOR_UNITS[currency]))


def from_minor(minor: int, currency: str) -> Decimal:
    """Convert minor units back to an exact decimal amount.

    >>> str(from_minor(1230, "EUR"))
    '12.30'
    """
    return Decimal(minor).scaleb(-_MINOR_UNITS[currency])
