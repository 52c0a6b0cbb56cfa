"""ExternalIds: CSPRNG output in AWS's charset and length, unique, and not derived from anything."""

from __future__ import annotations

import inspect
import math
import re
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from functions.onboard import externalid

AWS_RULE = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)  # sts:AssumeRole's ExternalId rule
DB_RULE = re.compile(r"[A-Za-z0-9_+=,.@:/-]+")  # the CHECK on cao.external_ids.value


@settings(max_examples=200, deadline=None)
@given(batch=st.integers(min_value=1, max_value=60))
def test_every_generated_external_id_is_a_valid_unique_256_bit_value(batch: int) -> None:
    values = [externalid.generate() for _ in range(batch)]
    assert len(set(values)) == batch
    for value in values:
        assert AWS_RULE.fullmatch(value)
        assert DB_RULE.fullmatch(value)
        assert externalid.OUR_PATTERN.fullmatch(value)
        assert externalid.is_valid_for_aws(value)
        assert len(value) == externalid.LENGTH
    assert externalid.ENTROPY_BITS >= 128
    # 43 base64url characters carry 258 bits, of which 256 are random.
    assert externalid.LENGTH * math.log2(len(externalid.ALPHABET)) >= externalid.ENTROPY_BITS


def test_generated_external_ids_look_uniformly_random() -> None:
    values = [externalid.generate() for _ in range(4000)]
    assert len(set(values)) == len(values)
    # The first 42 characters each carry 6 random bits (the 43rd only 4): over 168,000
    # characters each of the 64 symbols is expected ~2625 times. A chi-square over 63 degrees
    # of freedom passes 160 with probability ~1 - 1e-10 for a uniform source.
    counts = Counter(ch for v in values for ch in v[:42])
    assert set(counts) == set(externalid.ALPHABET)
    expected = sum(counts.values()) / 64
    chi2 = sum((counts[c] - expected) ** 2 / expected for c in externalid.ALPHABET)
    assert chi2 < 160
    # No shared structure: no two values share even a 6-character prefix by more than chance.
    prefixes = Counter(v[:6] for v in values)
    assert max(prefixes.values()) <= 2


def test_generate_takes_no_input_so_nothing_can_be_derived_into_it() -> None:
    assert not inspect.signature(externalid.generate).parameters
    source = inspect.getsource(externalid.generate)
    assert "secrets." in source and "random." not in source


@given(st.text(max_size=1300))
def test_the_aws_rule_accepts_exactly_what_aws_accepts(value: str) -> None:
    assert externalid.is_valid_for_aws(value) == bool(AWS_RULE.fullmatch(value))


def test_a_trailing_newline_is_not_a_valid_external_id() -> None:
    assert not externalid.is_valid_for_aws("abcdef\n")
    assert not externalid.is_valid_for_aws("a")
    assert externalid.is_valid_for_aws("a" * 1224) and not externalid.is_valid_for_aws("a" * 1225)
