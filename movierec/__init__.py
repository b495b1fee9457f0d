"""The `movierec` command: one console script that starts every part of the platform.

This package is the top layer (cli, supervisor, services, deploy, containers, report, architecture);
its ground floor, which imports no service package, is movierec.base. ARCHITECTURE.md draws the layers.
"""
