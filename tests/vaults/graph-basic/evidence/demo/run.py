"""A stand-in module for the graph tests: its record is written by the tests."""

print("demo")
