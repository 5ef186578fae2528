import pytest

from mirrorlib.words import and_list, count_of, day_in_words, duration_in_words, number_in_words


def test_and_list_joins_as_prose_and_refuses_nothing():
    assert and_list(["6 December 2026"]) == "6 December 2026"
    assert and_list(("a", "b")) == "a and b"
    assert and_list(["a", "b", "c"]) == "a, b and c"
    with pytest.raises(ValueError, match="at least one"):
        and_list([])


def test_count_of_says_all_when_every_one_counts():
    assert count_of(11, 11) == "all 11"
    assert count_of(8, 11) == "8 of the 11"


def test_number_in_words_writes_powers_of_ten_not_e_notation():
    values = [0.0391, 152.0, 999.4, 9620.0, 2.82e14, 4e-5, -1.5e6, 0.0]
    assert [number_in_words(x) for x in values] == [
        "0.0391", "152", "999", "9.62 × 10³", "2.82 × 10¹⁴", "4.00 × 10⁻⁵", "-1.50 × 10⁶", "0"
    ]  # fmt: skip


def test_day_in_words_reads_a_provenance_date():
    assert day_in_words("2026-12-06 04:06 UTC") == "6 December 2026"
    assert day_in_words("2026-11-28") == "28 November 2026"


def test_duration_in_words_switches_units_where_a_reader_would():
    words = [duration_in_words(s) for s in (1.2, 89.0, 95.0, 3000.0, 5400.0, 40_000.0)]
    assert words == ["1 second", "89 seconds", "2 minutes", "50 minutes", "1.5 hours", "11.1 hours"]
