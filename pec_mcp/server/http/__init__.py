"""The HTTP transport: the Starlette app, one token per user, replicas and their message bus, providers' webhooks."""
