"""The application layer: one function per task, plain options in, a result object out.

``tasks.py`` declares the flags, calls these and prints; nothing here prints
except the progress of long work (through a ``Reporter``), and nothing exits.

- ``baking`` — bake, plan, images, foundation;
- ``catalog`` — list, export, report, resolve, diff, channels, promote, rollback, revoke, restore;
- ``upkeep`` — validate, prune, janitor;
- ``machines`` — up, down.
"""
