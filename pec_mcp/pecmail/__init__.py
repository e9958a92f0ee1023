"""PEC over mail: daticert.xml, S/MIME signatures, received and outgoing PEC messages, IMAP and SMTP clients.

No MCP here: the server layer calls into this package as into a provider client.
"""
