"""Never finishes."""
import time

print("sleeping", flush=True)
while True:
    time.sleep(1)
