"""The application layer: one function per task, plain options in, a result object out.

``tasks.py`` declares the flags, calls these and prints; nothing here prints
except the progress of long work (through a ``Reporter``), and nothing exits.

- ``baking`` — bake, plan, images, foundation (``parallel``: a ``--jobs`` bake handed to the scheduler);
- ``catalog`` — list, export, report, resolve, diff, channels, sbom, check, leases, promote, rollback, revoke,
  restore;
- ``upkeep`` — validate, new, prune, janitor;
- ``machines`` — up, down.
"""
