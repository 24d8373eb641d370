"""Widgets of the hvtui app: the pyte terminal, the guest table, the detail panel."""
