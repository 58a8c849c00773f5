"""Coupon code rules and the random code generator (couponsvc.domain.codes)."""

from __future__ import annotations

import re
import sys
from collections import Counter

import pytest

from couponsvc.domain import codes as codes_module
from couponsvc.domain.codes import (
    ALPHABETS,
    DEFAULT_PATTERN,
    HEADROOM,
    MAX_CODE_LENGTH,
    check_capacity,
    code_problem,
    generate_codes,
    parse_pattern,
    pattern_space,
)

AMBIGUOUS = set("0O1IL")


# --- code_problem ---------------------------------------------------------------------------------
@pytest.mark.parametrize("code", ["SPR-0001", "a", "x" * MAX_CODE_LENGTH, "CAFÉ-Ünïcode-✓", "lower-and-UPPER",
                                  'quote"inside', "comma,inside", "tab-free_#!$%&*+/=?^`{|}~"])
def test_valid_codes(code: str) -> None:
    assert code_problem(code) is None


@pytest.mark.parametrize(("code", "words"), [
    ("", "empty"),
    ("x" * (MAX_CODE_LENGTH + 1), "longer than 100"),
    ("SPR 0001", "spaces"),
    (" SPR", "spaces"),
    ("SPR\t1", "control"),
    ("SPR\n1", "control"),
    ("SPR\r1", "control"),
    ("SPR\x00", "control"),
    ("SPR\x7f", "control"),
    ("SPR\u00a0", "spaces"),  # no-break space
    ("SPR\u200b1", "control"),  # zero-width space (a format character)
    ("SPR\u2028", "spaces"),  # line separator
])
def test_invalid_codes_are_refused_with_a_reason(code: str, words: str) -> None:
    problem = code_problem(code)
    assert problem is not None and words in problem


def test_no_whitespace_character_of_any_kind_is_allowed_in_a_code() -> None:
    whitespace = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    assert len(whitespace) > 20
    assert [ch for ch in whitespace if code_problem(f"A{ch}B") is None] == []


# --- parse_pattern --------------------------------------------------------------------------------
@pytest.mark.parametrize(("pattern", "slots"), [
    ("X", ["X"]),
    ("XX-99", ["X", "X", "=-", "9", "9"]),
    ("A9", ["A", "9"]),
    ("PRE-X", ["=P", "=R", "=E", "=-", "X"]),
    ("\\X9", ["=X", "9"]),  # backslash makes the next character literal
    ("\\\\9", ["=\\", "9"]),  # an escaped backslash
    ("\\A\\9\\XX", ["=A", "=9", "=X", "X"]),
    ("é-X", ["=é", "=-", "X"]),
])
def test_pattern_grammar(pattern: str, slots: list[str]) -> None:
    assert parse_pattern(pattern) == slots


@pytest.mark.parametrize(("pattern", "words"), [
    ("XX\\", "lone backslash"),
    ("", "no random character"),
    ("PRE-\\X", "no random character"),
    ("XXXX XXXX", "spaces"),
    ("X\t9", "control"),
    ("X" * (MAX_CODE_LENGTH + 1), "longer"),
])
def test_bad_patterns_are_refused(pattern: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_pattern(pattern)


def test_pattern_space_multiplies_the_alphabet_sizes() -> None:
    assert pattern_space(parse_pattern("X-9-A")) == 31 * 10 * 23
    assert pattern_space(parse_pattern("\\X99")) == 100


def test_capacity_needs_headroom_over_the_count() -> None:
    assert HEADROOM == 1000
    assert check_capacity("9999", 10) == ["9", "9", "9", "9"]  # 10,000 codes for 10: exactly enough
    with pytest.raises(ValueError, match=r"'9999' allows 10,000 codes, too few for 11"):
        check_capacity("9999", 11)
    with pytest.raises(ValueError, match="too few"):
        check_capacity("99", 1)
    check_capacity(DEFAULT_PATTERN, 10_000_000)


# --- generate_codes -------------------------------------------------------------------------------
def test_generated_codes_follow_the_pattern() -> None:
    codes = generate_codes("PRE-9A\\X-XX", 2000)
    assert len(codes) == 2000
    x = "[" + ALPHABETS["X"] + "]"
    rx = re.compile(rf"PRE-[0-9][{ALPHABETS['A']}]X-{x}{x}")
    assert [c for c in codes if not rx.fullmatch(c)] == []
    assert all(code_problem(c) is None for c in codes)


def test_generated_codes_use_the_whole_alphabet_and_no_look_alikes() -> None:
    codes = generate_codes("XXXXXXXXXX-AAAAAAAAAA-9999999999", 3000)
    x_chars = Counter("".join(c[:10] for c in codes))
    a_chars = Counter("".join(c[11:21] for c in codes))
    digits = Counter("".join(c[22:] for c in codes))
    assert set(x_chars) == set(ALPHABETS["X"]) and not AMBIGUOUS & set(x_chars)
    assert set(a_chars) == set(ALPHABETS["A"]) and not AMBIGUOUS & set(a_chars)
    assert set(digits) == set("0123456789")
    assert not AMBIGUOUS & (set(ALPHABETS["X"]) | set(ALPHABETS["A"]))
    # roughly uniform: 30,000 draws per slot kind; every character within 20 % of its share
    # (more than 8 standard deviations: a correct generator does not fail this)
    for counts, alphabet in ((x_chars, ALPHABETS["X"]), (a_chars, ALPHABETS["A"]), (digits, "0123456789")):
        expected = sum(counts.values()) / len(alphabet)
        assert all(abs(n - expected) < 0.2 * expected for n in counts.values()), counts


def test_default_pattern_codes_are_unique_in_practice() -> None:
    codes = generate_codes(DEFAULT_PATTERN, 20_000)
    assert len(set(codes)) == len(codes)
    assert re.fullmatch(r"[^-]{4}-[^-]{4}-[^-]{4}", codes[0])


def test_codes_come_from_os_urandom(monkeypatch: pytest.MonkeyPatch) -> None:
    """The generator draws from the OS CSPRNG: with os.urandom pinned, the codes are pinned too."""
    monkeypatch.setattr(codes_module.os, "urandom", lambda n: bytes(n))
    assert generate_codes("XX-9-A", 3) == ["22-0-A"] * 3


def test_rejection_sampling_drops_bytes_that_would_bias_the_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    # 31 characters: bytes 248..255 would favour the first 8 characters (255 % 31 == 7); they are skipped
    monkeypatch.setattr(codes_module.os, "urandom", lambda n: b"\xff" * (n - 1) + b"\x05")
    assert generate_codes("XXX", 1) == [ALPHABETS["X"][5] * 3]


def test_generating_nothing_gives_nothing() -> None:
    assert generate_codes("XX", 0) == []
