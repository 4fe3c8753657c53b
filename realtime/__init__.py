"""The per-frame runtime: capture -> hands -> features -> classify -> smooth -> show."""
