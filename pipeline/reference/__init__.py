"""Reference data every stage reads: the point registry, the calendar, false-alarm suppressions."""
