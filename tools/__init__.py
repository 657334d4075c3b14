"""Harnesses that exercise Kiln from outside: the fault suite (``invoke faults``) and the figures (``invoke bench``)."""
