"""The KPI engine: pure computation over logged numbers.

Nothing in this package touches a database, Slack, the network or the clock; time and data
come in as arguments, so every rule here is testable as a plain function.
"""
