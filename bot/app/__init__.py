"""The use cases: one module per subject, one calling convention.

Every use case takes a `Context` (who asks, in which workspace, when, and the ports it may
use) first, then plain arguments, and returns a domain result. None of them knows Slack,
Block Kit or the command line; `UserError` carries what the person can fix.
"""
