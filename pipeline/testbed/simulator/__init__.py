"""The simulator: a regency's collection points, their transaction feeds, and labelled leakage.

It is the project's own test bed and the demo's data. Everything is drawn from one seeded
generator, vectorised over point-hours and transactions, so 1,000 points x 1 year (~5M rows)
takes seconds. Outputs, in ``out_dir``:

- ``points.csv``    the point registry (TEAM.md format);
- ``feeds/*.csv``   transaction feeds (one file per local day, per week, or one file);
- ``labels.csv``    what was planted: leakage events and the regency-wide effects that must
                    stay quiet (``point_id, kind, start_utc, end_utc, operator_id, note``);
- ``closures.csv``  announced closures (``point_id, starts_at, ends_at, reason``), which the
                    detect lane loads as suppressions;
- ``calendar.csv``  the public holidays and rain spells in the window.

All points use the default zone, Asia/Jakarta (UTC+7, no daylight saving), so local time is
UTC + 7 hours.

The parts, in the order a run uses them: ``profiles`` (what the regency looks like), ``points``
(the registry and shifts), ``regency`` (calendar and ordinary trade), ``planting`` (the leakage),
``writer`` (the files) and ``run`` (``simulate`` itself).
"""

from pipeline.core.leakage_kinds import LEAKAGE_KINDS
from pipeline.intake.feeds import FEED_COLUMNS
from pipeline.testbed.simulator.profiles import DEFAULT_START, JAKARTA, QUIET_KINDS, SCENARIOS
from pipeline.testbed.simulator.run import Manifest, read_labels, simulate

__all__ = [
    "DEFAULT_START",
    "FEED_COLUMNS",
    "JAKARTA",
    "LEAKAGE_KINDS",
    "QUIET_KINDS",
    "SCENARIOS",
    "Manifest",
    "read_labels",
    "simulate",
]
