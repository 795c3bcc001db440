"""Benchmarks that print figures and ratios against anchors measured in the same run."""
