"""The test bed and tooling: simulators, evaluation, benchmark, demo, screenshots.

Production code never imports this package; only the CLI's test-bed commands do."""
