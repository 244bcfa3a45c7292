"""Stock graph files (package data): msgr.json and msgr_additive.json."""
