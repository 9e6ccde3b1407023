"""The detector against scikit-learn's shared estimator checks: the API contract (keyword-only
``__init__`` that only stores parameters, validation in ``fit``, learned attributes ending in
``_``, clone/get_params, feature-name and feature-count checks) checked rather than hand-written.

With scikit-learn 1.9 every check applies and passes, so nothing is listed as expected to fail;
the detector's own conventions that the checks do not cover are in its docstring (``score_samples``
is higher for more unusual, ``predict`` is 1/0). A check that cannot apply to an unsupervised
one-sided detector goes in ``CANNOT_APPLY`` with its reason; ``xfail_strict`` then fails the suite
once it passes again, so the list cannot go stale. (The one skip is scikit-learn's own: the array
API check runs only with SCIPY_ARRAY_API set.)
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from pipeline.detection.detector import LeakageDetector

CANNOT_APPLY: dict[str, str] = {}


def _cannot_apply(estimator) -> dict[str, str]:
    return CANNOT_APPLY


@parametrize_with_checks(
    [LeakageDetector()], expected_failed_checks=_cannot_apply, xfail_strict=True
)
def test_leakage_detector_passes_the_estimator_checks(estimator, check):
    check(estimator)
