"""Command-line interface: one module per role registers its sub-commands."""
