"""The training section and its reading (seed Fig. 7)."""

from __future__ import annotations

import math

from attndilute.report.sections.training import training_reading
from attndilute.report.wording import Curve


def test_training_readings():
    assert training_reading({"base": Curve(40, 1.02, 0.31, 0.712, 38, 40)}) == (
        "Under base, training loss fell from 1.020 to 0.310 over 40 epochs and validation Dice peaked at "
        "0.712 in epoch 38."
    )
    assert training_reading(
        {"a": Curve(10, 1.2, 0.4, 0.8, 10, 10), "b": Curve(5, 1.0, 1.0, math.nan, -1)}
    ) == (
        "Under a, training loss fell from 1.200 to 0.400 over 10 epochs and validation Dice peaked at 0.800 "
        "in epoch 10, its last validation, so it had not yet plateaued; under b, training loss stayed flat "
        "from 1.000 to 1.000 over 5 epochs with no validation Dice recorded."
    )


def test_training_reading_with_one_epoch_does_not_judge():
    text = training_reading({"base": Curve(1, 1.5, 1.5, 0.0, 1, 1, 1)})
    assert text == (
        "Under base, only 1 epoch ran (training loss 1.500, best validation Dice 0.000): too little to "
        "judge convergence."
    )
    assert "plateau" not in text and "flat" not in text
    # one validation cannot show that Dice was still rising
    two = training_reading({"base": Curve(2, 1.5, 1.2, 0.3, 2, 2, 1)})
    assert "plateaued" not in two and "over 2 epochs" in two


def test_training_section_of_an_empty_folder_says_what_to_run(empty_section):
    from attndilute.report.sections.training import training_section

    empty_section(training_section, "train")
