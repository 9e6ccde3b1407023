"""What a simulated regency looks like: its zone, point types, trade profiles, tariffs and names.

Plain numbers, no randomness: the generator draws around them (see ``points`` and ``regency``).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from pipeline.core.times import DEFAULT_TIMEZONE

JAKARTA = ZoneInfo(DEFAULT_TIMEZONE)
# Every simulated point is in the default zone, which has kept UTC+7 with no daylight saving
# since 1964: one fixed offset writes every local time (building strings beats tz arithmetic at
# 5M rows).
LOCAL_OFFSET = "+07:00"
# A Monday in the past; 8 weeks from it hold Christmas Day in the scored part (week 8), and a
# year from it still ends before today, so nothing generated is "in the future" by accident.
DEFAULT_START = datetime(2025, 11, 3, tzinfo=JAKARTA)

# Labelled effects that are not leakage and must stay quiet: public holidays, announced closures,
# regency-wide rain; and in the "varied" scenario a few hours' dip at one point (a local shower)
# and a regional day off the calendar does not know (every levy point of the regency closed).
QUIET_KINDS = ("holiday", "closure", "rain", "dip", "regional")
# "varied" (the default) is the harder regency; "classic" writes exactly what the simulator wrote
# before it (the demo's and older tests' data).
SCENARIOS = ("varied", "classic")
LABEL_COLUMNS = (
    "point_id",
    "kind",
    "start_utc",
    "end_utc",
    "operator_id",
    "note",
    "detectability",
)
METHODS = np.array(["cash", "qris", "card", "transfer", "ewallet"])
STATUSES = np.array(["paid", "void", "refund"])
CASH, QRIS, CARD, TRANSFER, EWALLET = range(5)
PAID, VOID, REFUND = range(3)

TYPES = ("parking", "market", "restaurant_tax", "hotel_tax", "entertainment_tax")
TYPE_SHARE = np.array([0.30, 0.20, 0.30, 0.10, 0.10])
PREFIX = {
    "parking": "PKR",
    "market": "PSR",
    "restaurant_tax": "RST",
    "hotel_tax": "HTL",
    "entertainment_tax": "HBR",
}
OPEN_HOURS = {  # local (open, close) hour; close is exclusive
    "parking": (6, 22),
    "market": (4, 14),
    "restaurant_tax": (10, 22),
    "hotel_tax": (0, 24),
    "entertainment_tax": (14, 24),
}
# Median transactions per point on an ordinary weekday; sizes are lognormal around it. A parking
# attendant's stretch or a market's levy round sees a hundred or more a day, a warung's tapping
# box a few dozen, a small hotel a handful.
DAILY_MEDIAN = {
    "parking": 120.0,
    "market": 100.0,
    "restaurant_tax": 50.0,
    "hotel_tax": 20.0,
    "entertainment_tax": 30.0,
}
SIZE_SIGMA = 0.8
# Each point's day-to-day spread of trade beyond counting noise (lognormal sigma of a day's rate).
DAY_NOISE = 0.12
# The varied scenario: sizes spread wider still, and about one point in eight a tiny one with
# about one sale an hour (a warung's tapping box, a losmen).
VARIED_SIZE_SIGMA = 0.5  # an extra lognormal spread on top of SIZE_SIGMA
TINY_SHARE, TINY_DAILY = 0.12, (8.0, 20.0)
ROTATING_SHARE = 0.5  # points whose operators rotate through the shifts week by week
DRIFT_SIGMA = 0.1  # ordinary trend over the whole run (a fraction of trade, +/-)


def _profile(pairs: dict[tuple[int, int], float]) -> np.ndarray:
    hours = np.zeros(24)
    for (lo, hi), weight in pairs.items():
        hours[lo:hi] = weight
    return hours / hours.sum()


# Share of a day's transactions in each local hour (zero when closed).
HOURLY = {
    "parking": _profile(
        {(6, 8): 0.5, (8, 10): 0.9, (10, 14): 1.0, (14, 16): 0.8, (16, 20): 1.0, (20, 22): 0.5}
    ),
    "market": _profile({(4, 5): 0.6, (5, 8): 1.0, (8, 10): 0.7, (10, 12): 0.4, (12, 14): 0.2}),
    "restaurant_tax": _profile(
        {(10, 11): 0.3, (11, 14): 1.0, (14, 17): 0.35, (17, 18): 0.6, (18, 21): 1.0, (21, 22): 0.4}
    ),
    "hotel_tax": _profile(
        {(0, 6): 0.1, (6, 10): 0.5, (10, 13): 1.0, (13, 19): 0.8, (19, 22): 0.6, (22, 24): 0.25}
    ),
    "entertainment_tax": _profile({(14, 17): 0.25, (17, 19): 0.5, (19, 23): 1.0, (23, 24): 0.7}),
}
WEEKLY = {  # Monday .. Sunday
    "parking": [1.0, 1.0, 1.0, 1.0, 1.05, 1.2, 1.1],
    "market": [1.0, 0.95, 0.95, 1.0, 1.0, 1.15, 1.25],
    "restaurant_tax": [0.9, 0.9, 0.95, 0.95, 1.1, 1.3, 1.25],
    "hotel_tax": [0.8, 0.8, 0.85, 0.9, 1.1, 1.4, 1.0],
    "entertainment_tax": [0.6, 0.6, 0.7, 0.8, 1.2, 1.7, 1.1],
}
PAYMENT_MIX = {  # cash, qris, card, transfer, ewallet
    "parking": [0.84, 0.11, 0.0, 0.0, 0.05],
    "market": [0.88, 0.09, 0.0, 0.0, 0.03],
    "restaurant_tax": [0.45, 0.30, 0.15, 0.02, 0.08],
    "hotel_tax": [0.15, 0.20, 0.45, 0.15, 0.05],
    "entertainment_tax": [0.30, 0.25, 0.35, 0.02, 0.08],
}
# Fixed tariffs for levies, (median, sigma, rounding) for taxed sales.
TARIFFS = {
    "parking": ([2000, 3000, 5000, 10000], [0.45, 0.25, 0.20, 0.10]),
    "market": ([2000, 3000, 5000, 10000, 15000], [0.30, 0.25, 0.25, 0.15, 0.05]),
}
TICKETS = {
    "restaurant_tax": (75_000, 0.6, 500),
    "hotel_tax": (550_000, 0.5, 1000),
    "entertainment_tax": (180_000, 0.7, 1000),
}
HOLIDAY_EFFECT = {
    "parking": 0.55,
    "market": 0.4,
    "restaurant_tax": 1.35,
    "hotel_tax": 1.3,
    "entertainment_tax": 1.5,
}
RAIN_EFFECT = {"parking": 0.35, "market": 0.45}
VOID_RATE, REFUND_RATE, LATE_RATE = 0.010, 0.003, 0.002

DISTRICTS = (
    "Cibeber",
    "Sukamaju",
    "Karangsari",
    "Margaluyu",
    "Tanjungsari",
    "Wanasari",
    "Cikalong",
    "Pagerageung",
)
PLACES = (
    "Baru",
    "Induk",
    "Sentral",
    "Lama",
    "Kidul",
    "Kaler",
    "Wetan",
    "Kulon",
    "Raya",
    "Alun-Alun",
    "Stasiun",
    "Terminal",
)
VENUES = {
    "restaurant_tax": (
        "RM Padang",
        "Warung Sunda",
        "Bakso",
        "Sate",
        "Kedai Kopi",
        "Soto",
        "Ayam Goreng",
        "Mie Ayam",
        "Seafood",
        "Pecel Lele",
    ),
    "hotel_tax": ("Hotel", "Penginapan", "Wisma", "Losmen", "Guest House"),
    "entertainment_tax": ("Karaoke", "Biliar", "Kolam Renang", "Bioskop", "Futsal", "Wahana"),
}
WORDS = (
    "Sederhana",
    "Sari",
    "Mekar",
    "Jaya",
    "Indah",
    "Asri",
    "Lestari",
    "Makmur",
    "Sejahtera",
    "Bahagia",
    "Melati",
    "Kenanga",
    "Cempaka",
    "Dahlia",
    "Permata",
    "Harapan",
)
OPERATOR_NAMES = (
    "agus",
    "budi",
    "dewi",
    "eko",
    "fitri",
    "hendra",
    "indah",
    "joko",
    "kartini",
    "lestari",
    "made",
    "nur",
    "putu",
    "rina",
    "sari",
    "teguh",
    "wahyu",
    "yanti",
    "asep",
    "ujang",
    "cecep",
    "euis",
    "iwan",
    "neneng",
)
CLOSURE_REASONS = ("renovasi gedung", "perbaikan jalan akses", "acara desa", "pemeliharaan mesin")
