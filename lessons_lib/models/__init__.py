"""Network definitions. A model file builds a network; it never loads data."""
