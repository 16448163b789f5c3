"""Crashes after some output: status error with the log's tail."""
print("loading the data")
print("training")
raise RuntimeError("the fixture module broke on purpose")
