"""Tool annotations shared by every toolset: what a tool does to the world, for clients that show or gate it."""

from __future__ import annotations

from mcp.types import ToolAnnotations

# Reads a provider: no side effect, the same answer until the world changes.
READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, destructive_hint=False, open_world_hint=True)
# Reads only the local store.
LOCAL_READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, destructive_hint=False, open_world_hint=False)
# Deletes or revokes something at the provider.
DELETE = ToolAnnotations(read_only_hint=False, idempotent_hint=True, destructive_hint=True, open_world_hint=True)
# Sends, registers, pays: not repeatable without effect (idempotency keys protect the sends).
SEND = ToolAnnotations(read_only_hint=False, idempotent_hint=False, destructive_hint=False, open_world_hint=True)
# Changes something at the provider that can be changed back or repeated harmlessly (cancel, reschedule, upload).
CHANGE = ToolAnnotations(read_only_hint=False, idempotent_hint=True, destructive_hint=False, open_world_hint=True)
