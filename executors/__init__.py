"""VCED's executors and the documents they exchange."""
