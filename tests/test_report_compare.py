"""report.compare_paired: the paired t-interval behind every verdict, against table values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jaxprune.report import compare_paired


def test_interval_matches_the_t_table_and_is_no_detectable_difference():
    # Rethinking's VGG-16-A Scratch-E: -0.68 +/- 5.88 over 3 seeds. t(0.975, 2) = 4.302653 (table).
    d = -0.68 + 5.88 * np.array([-1.0, 0.0, 1.0])  # mean -0.68, sample std 5.88
    c = compare_paired(d, np.zeros(3))
    assert c.mean == pytest.approx(-0.68) and c.std == pytest.approx(5.88)
    assert c.half_width == pytest.approx(4.302653 * 5.88 / math.sqrt(3), rel=1e-6)  # 14.61
    assert c.verdict == "no detectable difference" and (c.higher, c.lower, c.ties) == (1, 2, 0)
    words = c.sentence("scratch", "fine-tuned", unit=" points")
    assert words.startswith("no detectable difference between scratch and fine-tuned: -0.68")
    assert "+/- 14.61" in words and "95% CI -15.29 to 13.93" in words
    # the same numbers are not "equivalent" within 1 point, and are within 20
    assert compare_paired(d, np.zeros(3), margin=1.0).verdict == "no detectable difference"
    assert compare_paired(d, np.zeros(3), margin=20.0).verdict == "equivalent"


def test_higher_lower_pairing_and_words():
    a, b = [0.981, 0.979, 0.983], [0.974, 0.975, 0.977]  # paired: a - b = 7, 4, 6 thousandths
    c = compare_paired(a, b)
    assert c.diffs == pytest.approx((0.007, 0.004, 0.006))
    # t(0.975, 2) = 4.302653; std of (7, 4, 6) / 1000 = 0.0015275
    assert c.low == pytest.approx(0.0056667 - 4.302653 * 0.0015275 / math.sqrt(3), abs=1e-6)
    assert c.verdict == "higher" and c.higher == 3
    assert c.sentence("ticket", "dense", scale=100, unit=" points") == (
        "ticket higher than dense by 0.57 points (95% CI 0.19 to 0.95; ticket higher in 3 of 3 "
        "seeds)")
    assert compare_paired(b, a).verdict == "lower"
    # unpaired thinking would call these equal-ish; the pairing removes the seed effect
    assert compare_paired([1.0, 2.0, 3.0, 4.0], [0.9, 1.9, 2.9, 3.95]).verdict == "higher"
    # 99% is wider than 95%
    assert compare_paired(a, b, confidence=0.99).half_width > c.half_width


def test_one_seed_ties_and_bad_input():
    one = compare_paired([0.5], [0.4])
    assert one.verdict == "one seed" and math.isnan(one.low)
    assert "on one seed (no interval)" in one.sentence()
    tied = compare_paired([1.0, 1.0], [1.0, 1.0])
    assert tied.ties == 2 and tied.verdict == "no detectable difference"
    with pytest.raises(ValueError, match="equally long"):
        compare_paired([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="non-finite"):
        compare_paired([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ValueError, match="confidence"):
        compare_paired([1.0, 2.0], [1.0, 2.0], confidence=95)
