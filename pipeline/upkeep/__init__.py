"""Keeping a project and its catalog in order: retention, the janitor's rules, validation, scaffolding, and the
pending package updates of recorded images."""
