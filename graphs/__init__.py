"""Stock graph files (package data): msgr.json, msgr_additive.json and msgr_cascade.json."""
