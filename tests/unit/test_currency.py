"""Unit tests for minor-unit conversion in riskstream.currency."""

from __future__ import annotations

from decimal import Decimal

import pytest

from riskstream.currency import from_minor, minor_units, to_minor


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        pytest.param("12.34", "EUR", 1234, id="eur"),
        pytest.param("0.01", "EUR", 1, id="eur-cent"),
        pytest.param("9007199254740993.01", "EUR", 900719925474099301, id="eur-large"),
        pytest.param("1500", "JPY", 1500, id="jpy"),
        pytest.param("1", "JPY", 1, id="jpy-one"),
        pytest.param("1.234", "BHD", 1234, id="bhd"),
        pytest.param("0.001", "BHD", 1, id="bhd-fils"),
    ],
)
def test_minor_units_round_trip(amount, currency, minor):
    value = Decimal(amount)

    converted = to_minor(value, currency)
    restored = from_minor(converted, currency)

    assert converted == minor
    assert restored == value
    assert str(restored) == amount


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        pytest.param("12.3", "EUR", "12.30", id="eur-one-decimal"),
        pytest.param("7", "EUR", "7.00", id="eur-integer"),
        pytest.param("2.5", "BHD", "2.500", id="bhd-one-decimal"),
        pytest.param("1E+3", "JPY", "1000", id="jpy-exponent"),
    ],
)
def test_from_minor_uses_currency_scale(amount, currency, shown):
    minor = to_minor(Decimal(amount), currency)

    assert str(from_minor(minor, currency)) == shown


@pytest.mark.parametrize(
    ("currency", "places"),
    [
        pytest.param("EUR", 2, id="eur"),
        pytest.param("JPY", 0, id="jpy"),
        pytest.param("BHD", 3, id="bhd"),
        pytest.param("CLF", 4, id="clf"),
        pytest.param("XYZ", None, id="unknown"),
    ],
)
def test_minor_units_of_currency(currency, places):
    assert minor_units(currency) == places
