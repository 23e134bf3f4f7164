"""Tests of the CDNOW converter, on a small file written here and the real one."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections import Counter
from pathlib import Path

import orjson
import pytest

from riskstream.cli import main
from riskstream.datasets import DatasetError, cdnow
from riskstream.events import OrderPlaced, parse_event

# CDNOW's own layout: a header, whitespace-separated columns, CRLF line ends.
# Customer 00003 is listed before 00002 to check the sorting; 00002 buys twice
# on one day; 00004 only has a purchase worth 0.00; 00005 has both kinds.
SAMPLE = (
    " customer_id  date number_of_cds  dollar_value\r\n"
    " 00001 19970101  1   11.77\r\n"
    " 00003 19970102  2   20.76\r\n"
    " 00002 19970112  1   12.00\r\n"
    " 00002 19970112  5   77.00\r\n"
    " 00003 19970330  2   20.76\r\n"
    " 00003 19970402  3   19.54\r\n"
    " 00003 19971115  5   57.45\r\n"
    " 00004 19970101  1    0.00\r\n"
    " 00005 19970101  1    0.00\r\n"
    " 00005 19980105  2   25.74\r\n"
    "\r\n"
)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "CDNOW_sample.txt"
    path.write_bytes(SAMPLE.encode("ascii"))
    return path


@pytest.fixture(scope="module")
def master_file() -> Path:
    try:
        return cdnow.locate_master_file()
    except DatasetError as exc:
        pytest.skip(f"the CDNOW file is not installed: {exc}")


def read_events(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


# -- the small file ----------------------------------------------------------


def test_orders_map_rows(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    cdnow.convert(out, path=sample)
    orders = [e for e in read_events(out) if e["type"] == "order.placed"]
    first = next(e for e in orders if e["customer_id"] == "CDNOW-00001")
    assert first["order_id"] == "CDNOW-00001-19970101-1"
    assert first["event_id"] == "CDNOW-00001-19970101-1-placed"
    assert first["occurred_at"] == "1997-01-01T12:00:00Z"
    assert first["amount"] == "11.77"
    assert first["currency"] == "USD"
    assert first["source"] == "cdnow"
    assert first["lines"] == [
        {"sku": "cd", "category": "music", "quantity": 1, "amount": "11.77"}
    ]


def test_same_day_orders_distinct(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    cdnow.convert(out, path=sample)
    orders = [
        e
        for e in read_events(out)
        if e["type"] == "order.placed" and e["customer_id"] == "CDNOW-00002"
    ]
    assert [e["order_id"] for e in orders] == [
        "CDNOW-00002-19970112-1",
        "CDNOW-00002-19970112-2",
    ]
    assert [e["occurred_at"] for e in orders] == [
        "1997-01-12T12:00:00Z",
        "1997-01-12T12:01:00Z",
    ]
    assert [e["lines"][0]["quantity"] for e in orders] == [1, 5]


def test_zero_values_skipped_and_counted(sample: Path, tmp_path: Path) -> None:
    stats = cdnow.convert(tmp_path / "events.jsonl", path=sample)
    events = read_events(tmp_path / "events.jsonl")
    assert stats.rows == 10
    assert stats.customers == 5
    assert stats.zero_value_rows == 2
    assert stats.orders == 8
    assert stats.customers_without_orders == 1
    assert not [e for e in events if e["customer_id"] == "CDNOW-00004"]
    own = [e for e in events if e["customer_id"] == "CDNOW-00005"]
    assert [e["occurred_at"] for e in own if e["type"] == "order.placed"] == [
        "1998-01-05T12:00:00Z"
    ]


def test_stats_count_written_events(sample: Path, tmp_path: Path) -> None:
    stats = cdnow.convert(tmp_path / "events.jsonl", path=sample)
    events = read_events(tmp_path / "events.jsonl")
    assert stats.events == len(events)
    assert stats.events_by_type == Counter(e["type"] for e in events)
    assert stats.events_by_type["order.placed"] == stats.orders


def test_events_follow_contract(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    cdnow.convert(out, path=sample)
    for line in out.read_bytes().splitlines():
        event = parse_event(line)
        if isinstance(event, OrderPlaced):
            assert event.lines is not None
            assert sum(line.amount for line in event.lines) == event.amount


def test_sources_labelled(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    cdnow.convert(out, path=sample)
    for event in read_events(out):
        if event["type"] == "order.placed":
            assert event["source"] == "cdnow"
        else:
            assert event["source"].startswith("simulated:")


def test_same_seed_same_bytes(sample: Path, tmp_path: Path) -> None:
    first, second, other = (tmp_path / f"{n}.jsonl" for n in ("a", "b", "c"))
    cdnow.convert(first, path=sample, seed=7)
    cdnow.convert(second, path=sample, seed=7)
    cdnow.convert(other, path=sample, seed=8)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_subset_keeps_lowest_ids(sample: Path, tmp_path: Path) -> None:
    stats = cdnow.convert(tmp_path / "events.jsonl", path=sample, customers=2)
    customers = {e["customer_id"] for e in read_events(tmp_path / "events.jsonl")}
    assert customers == {"CDNOW-00001", "CDNOW-00002"}
    assert stats.customers == 2


def test_events_sorted_by_time(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    cdnow.convert(out, path=sample)
    times = [e["occurred_at"] for e in read_events(out)]
    assert times == sorted(times)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (" 00001 19970101  1\r\n", "expected 4 fields"),
        (" 0000x 19970101  1   11.77\r\n", "customer id '0000x'"),
        (" 00001 19970231  1   11.77\r\n", "date '19970231'"),
        (" 00001 19970101  0   11.77\r\n", "number of CDs '0'"),
        (" 00001 19970101  1   ab\r\n", "dollar value 'ab' is not a number"),
        (" 00001 19970101  1   1.234\r\n", "at most 2 decimal places"),
        (" 00001 19970101  1   -1.00\r\n", "must be 0 or more"),
    ],
)
def test_malformed_row_names_line(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(" 00001 19970101  1   11.77\r\n" + row, encoding="ascii")
    with pytest.raises(DatasetError, match=message) as caught:
        list(cdnow.read_purchases(path))
    assert f"{path}:2:" in str(caught.value)


def test_subset_size_validated() -> None:
    with pytest.raises(DatasetError, match="customers: must be 1 or more"):
        cdnow.select_customers([], 0)


def test_missing_package_names_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetError, match=r"pip install 'riskstream\[cdnow\]'"):
        cdnow.locate_master_file()


def test_missing_file_names_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class Distribution:
        def locate_file(self, name: str) -> Path:
            return tmp_path / name

    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: Distribution())
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetError, match="not found") as caught:
        cdnow.locate_master_file()
    assert "riskstream[cdnow]" in str(caught.value)


def test_failed_convert_leaves_no_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text(
        " 00001 19970101  1   11.77\r\n 00002 x 1 1.00\r\n", encoding="ascii"
    )
    out = tmp_path / "events.jsonl"
    with pytest.raises(DatasetError):
        cdnow.convert(out, path=bad)
    assert list(tmp_path.iterdir()) == [bad]


# -- the real file -----------------------------------------------------------


def test_real_file_counts(master_file: Path) -> None:
    purchases = list(cdnow.read_purchases(master_file))
    assert len(purchases) == 69_659
    assert len({p.customer_id for p in purchases}) == 23_570
    assert min(p.day for p in purchases).isoformat() == "1997-01-01"
    assert max(p.day for p in purchases).isoformat() == "1998-06-30"
    assert sum(1 for p in purchases if p.value == 0) == 80


def test_real_subset_stable(master_file: Path, tmp_path: Path) -> None:
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    cdnow.convert(small, path=master_file, customers=100)
    cdnow.convert(large, path=master_file, customers=300)
    small_events = small.read_bytes().splitlines()
    kept = {orjson.loads(line)["customer_id"] for line in small_events}
    assert len(kept) <= 100
    from_large = [
        line
        for line in large.read_bytes().splitlines()
        if orjson.loads(line)["customer_id"] in kept
    ]
    assert from_large == small_events


def test_real_subset_ends_in_period(master_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    stats = cdnow.convert(out, path=master_file, customers=300)
    lines = out.read_bytes().splitlines()
    assert stats.events == len(lines)
    for line in lines:
        event = parse_event(line)
        assert event.occurred_at <= cdnow.END
        if event.type == "order.placed":
            assert event.source == "cdnow"
            assert event.currency == "USD"
        else:
            assert (event.source or "").startswith("simulated:")


def test_cli_prints_counts(
    master_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "events.jsonl"
    status = main(["datasets", "cdnow", "--out", str(out), "--customers", "50"])
    printed = capsys.readouterr().out
    assert status == 0
    assert out.is_file()
    assert "read 218 purchases of 50 customers" in printed
    assert "skipped 0 purchases worth 0.00" in printed
    assert "order.placed: 218 (real)" in printed


def test_cli_rejects_zero_customers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["datasets", "cdnow", "--out", str(tmp_path / "e"), "--customers", "0"])
    assert "must be 1 or more" in capsys.readouterr().err
