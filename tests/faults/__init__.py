"""The fault suite (TARGETS.md R1–R10): scenario functions that run a fault against real processes and
return a `FaultResult`; the pytest short forms and `bench/faults.py` both call them."""
