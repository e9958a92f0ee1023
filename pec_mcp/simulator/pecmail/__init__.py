"""The simulator's PEC provider over SMTP and IMAP on loopback, with a test certificate authority of its own."""
