"""WindowKV-family presets found with ``windowkv inspect`` on real-prose needles (``docs/inspect.md``).

On ``needle_prose`` the question attends to a fact's *key* ("the special magic number for Shanghai") more
than to its *value* (the digits after it), so window max keeps the key's window and drops the value's.
These presets replace the QA profile's ``window_max`` by ``window_margin`` (the same ranking of windows,
each taken with the window after it, at the same total budget); the ``other`` profile and everything
else stay as in the preset they extend. Measurements: ``docs/report.md``.
"""

from __future__ import annotations

from windowkv.policies.presets import Preset

#: the QA profile of the margin presets: 8-token windows by top-4 mean, each taken with the next window
MARGIN_QA = {"selector": {"type": "window_margin", "window_size": 8, "windows_before": 0, "windows_after": 1,
                          "heads": "shared"}, "suffix_size": 32}
PAPER = "Zuo et al., WindowKV, arXiv 2503.17922 (2025); margins after windows: windowkv"

WINDOWKV_FAMILY_PRESETS = (
    Preset(
        "windowkv_margin",
        {"preset": "windowkv", "profiles": {"qa": MARGIN_QA}},
        "WindowKV whose QA windows are each kept with the next window (a key's value), at the same budget.",
        PAPER,
        ("variant",),
    ),
    Preset(
        "windowkv_margin_deep_leader",
        {"preset": "windowkv_deep_leader", "profiles": {"qa": MARGIN_QA}},
        "windowkv_margin whose layer groups share their last layer's selection.",
        PAPER,
        ("variant",),
    ),
    Preset(
        "windowkv_margin_no_sharing",
        {"preset": "windowkv", "sharing": {"type": "none"}, "profiles": {"qa": MARGIN_QA}},
        "windowkv_margin where every layer selects its own windows (no index sharing).",
        PAPER,
        ("variant",),
    ),
)
