"""The cascade: cameras of other nodes shown and pulled here (docs/cascade.md)."""
