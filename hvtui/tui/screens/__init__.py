"""Screens of the hvtui app: dashboard, console, and the modals in their own module."""
