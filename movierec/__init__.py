"""The `movierec` command: one console script that starts every part of the platform."""
