"""Exits 0 without writing metrics.json."""
print("forgot the metrics")
