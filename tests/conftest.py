"""Hypothesis profiles for the property tests.

``default`` (used unless ``HYPOTHESIS_PROFILE`` names another) is derandomised: the same
examples on every run, so CI is reproducible and a failure can be rerun as it was. ``explore``
draws fresh random examples on each run (as many as each test sets), for a local hunt. No
deadline in either: the machines that run these are shared and their timings vary.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore",
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
