"""The ``mailbox`` toolset: the life of a PEC mailbox at openapi.it."""
