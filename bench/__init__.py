"""`make bench`: figures and ratios measured in one run (not part of `make test`)."""
