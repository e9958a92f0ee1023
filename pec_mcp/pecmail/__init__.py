"""PEC over mail: read daticert.xml, verify S/MIME signatures, parse received PEC messages, compose outgoing ones.

No MCP here: the server and the IMAP/SMTP clients build on these functions.
"""
