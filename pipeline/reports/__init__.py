"""What the catalog's records become for people and tools: the HTML report, SBOMs, diffs."""
