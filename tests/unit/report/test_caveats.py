"""The report's banner rules."""

from __future__ import annotations

import math


def test_caveats():
    from attndilute.report import caveats

    assert caveats.training_caveat({"base": (40, 0.71), "act": (12, 0.68)}) is None
    assert caveats.training_caveat({"base": (1, 0.0), "act": (1, 0.017), "ok": (50, 0.7)}) == (
        "Models not trained enough to interpret: base is untrained (1 epoch, best validation Dice 0.000) "
        "and act is untrained (1 epoch, best validation Dice 0.017). A model counts as barely trained "
        "below 10 epochs or a best validation Dice of 0.5, and as untrained below a Dice of 0.1 (the "
        "detection threshold); its ADI, CKA and segmentation numbers show that the pipeline runs, not how "
        "a trained transformer behaves."
    )
    assert "base is barely trained (40 epochs, best validation Dice 0.300)" in caveats.training_caveat(
        {"base": (40, 0.3)}
    )
    assert "never validated" in caveats.training_caveat({"base": (40, math.nan)})
    fast = caveats.demo_caveat({"variant": "fast", "n_cases": 12, "epochs": {"base": 1, "act": 1}})
    assert fast.startswith("Fast demo (attndilute demo --fast; 12 synthetic phantom cases, epochs: base 1, "
                           "act 1): a check that every step runs, not a result.")
    assert caveats.demo_caveat(None) is None
    assert caveats.sample_caveat(10) is None and caveats.sample_caveat(None) is None
    assert caveats.sample_caveat(3).startswith("Small sample: 3 case(s) in the smallest group.")
