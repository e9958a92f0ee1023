"""The ``pec`` toolset: sending PEC, receipts, inbox and quota on PEC Massiva and on IMAP/SMTP accounts."""
