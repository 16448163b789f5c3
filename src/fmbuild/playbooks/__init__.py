"""Runnable playbook steps: marks in notes (`steps`), running and judging them (`run`), the
verify command's part (`verify`), and what check, the site and the Editions read (`state`)."""
