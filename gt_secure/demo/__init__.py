"""The end-to-end demo behind ``gt-secure demo``."""
