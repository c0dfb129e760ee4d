"""Developer tools that are not part of any installed package (run from the repo root)."""
