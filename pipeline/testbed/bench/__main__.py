"""``python -m pipeline.testbed.bench`` (the Makefile's ``bench``; each stage's child process)."""

from pipeline.testbed.bench.command import main

main()
