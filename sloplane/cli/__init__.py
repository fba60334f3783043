"""The `sloplane` command: every subcommand, the demo, and the helpers they share."""
