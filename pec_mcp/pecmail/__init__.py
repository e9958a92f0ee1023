"""PEC over plain mail protocols: IMAP and SMTP clients, receipts and envelopes, presets of the PEC providers.

Nothing here imports mcp: the server layer calls into this package like into a provider client.
"""
