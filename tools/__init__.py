"""Thin command-line tools over the vggish and classifier packages."""
