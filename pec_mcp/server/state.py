"""What the server holds while it runs: settings, the store, one HTTP client per provider, the simulator offline."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from pec_mcp.config import ProviderName, Settings
from pec_mcp.errors import ConfigError
from pec_mcp.redaction import Redactor
from pec_mcp.store import Store, StorePacer, store_location

# The HTTP stack, provider clients, the send path, the job runner and the simulator are imported when first used,
# not at start-up: a server answers its first requests sooner, and a provider never called costs nothing.
if TYPE_CHECKING:
    import httpx

    from pec_mcp.accounts import Account, MailEndpoints
    from pec_mcp.channels import Channel
    from pec_mcp.http import ClientOptions, Pacer
    from pec_mcp.inbox_index import InboxIndex
    from pec_mcp.jobs import FollowUpPolicy, JobRunner
    from pec_mcp.mail_accounts import MailAccount
    from pec_mcp.mail_sending import MailSender
    from pec_mcp.pecmail.signature import TrustStore
    from pec_mcp.providers.mensatek import MensatekClient
    from pec_mcp.providers.openapi_pec import OpenapiPecClient
    from pec_mcp.providers.pecmassiva import Credentials
    from pec_mcp.sending import PecSender
    from pec_mcp.server.offline import OfflineTransport
    from pec_mcp.simulator import Simulator
    from pec_mcp.simulator.pecmail.servers import PecMailServers

SIMULATOR_ORIGIN = "http://simulator"
RUNNER_GRACE = 1.0  # seconds after start-up when the bulk job runner starts if no job was started before
# Where each provider is mounted in the simulator (the same as pec_mcp.simulator.app.MOUNTS, without importing it).
SIMULATOR_MOUNTS: dict[str, str] = {"pecmassiva": "/pecmassiva", "openapi_pec": "/openapi-pec",
                                    "mensatek": "/mensatek/v7"}


@dataclass
class AppState:
    """Every shared resource of a running server; tools reach it through the request context."""

    settings: Settings
    store: Store
    redactor: Redactor
    clients: dict[ProviderName, httpx.AsyncClient] = field(default_factory=dict)
    # Makes a provider's client on first use: a client for a real host loads the CA bundle into an SSL context
    # (about 20 ms each), which a server that never calls that provider need not pay, least of all at start-up.
    connect: Callable[[ProviderName, str], httpx.AsyncClient] | None = None
    simulated: bool = False  # offline without an injected transport: the providers are an in-process simulator
    on_simulator: Callable[[Simulator], None] | None = None  # wires a new simulator's callbacks to this server
    runner: JobRunner | None = None  # the bulk job runner, once started (bulk toolset)
    _runner_wanted: anyio.Event = field(default_factory=anyio.Event)
    _offline: OfflineTransport | None = None
    _pec: PecSender | None = None
    _mensatek: MensatekClient | None = None
    _inbox_index: InboxIndex | None = None
    _mail_accounts: dict[str, MailAccount] = field(default_factory=dict)
    _channels: dict[str, Channel] = field(default_factory=dict)
    # Tells subscribers of pec://sendings/{message_id} that receipts arrived (set by open_state).
    publish: Callable[[str], Awaitable[None]] | None = None
    # Starts following an IMAP account in the background (IDLE or UID polling), set by open_state.
    follow: Callable[[MailAccount], None] | None = None
    _trust: TrustStore | None = None
    _pec_mail: PecMailServers | None = None  # offline: the simulator's PEC mail provider, started on first use

    @property
    def environment(self) -> str:
        return self.settings.env

    @property
    def simulator(self) -> Simulator | None:
        """The in-process simulator (offline environment without an injected transport), created on first use."""
        return self.offline_transport().simulator if self.simulated else None

    def offline_transport(self) -> OfflineTransport:
        """The transport to the in-process simulator, for the provider clients of the offline environment."""
        if self._offline is None:
            from pec_mcp.server.offline import OfflineTransport

            self._offline = OfflineTransport(self.settings, on_create=self.on_simulator)
        return self._offline

    def wake_runner(self) -> None:
        """A bulk job was started: start the job runner if it still waits, and have it look for work now."""
        self._runner_wanted.set()
        if self.runner is not None:
            self.runner.wake()

    async def run_jobs(self, publish: Callable[[str], Awaitable[None]] | None) -> None:
        """Run the bulk job runner until cancelled, from the first job started here or RUNNER_GRACE after start-up.

        Resuming what an earlier process left can wait a second; importing and starting the runner at once would
        delay the client's first answers for nothing.
        """
        with anyio.move_on_after(RUNNER_GRACE):
            await self._runner_wanted.wait()
        from pec_mcp.accounts import sending_accounts
        from pec_mcp.jobs import JobRunner

        self.runner = JobRunner(store=self.store, settings=self.settings,
                                channel=lambda name: self.channel(self.account(name)),
                                accounts=sending_accounts(self.settings), publish=publish,
                                policy=follow_up_policy(self.settings))
        await self.runner.run()

    def client(self, provider: ProviderName) -> httpx.AsyncClient:
        """The HTTP client of a provider; ConfigError when it has no host in this environment."""
        client = self.clients.get(provider)
        if client is None:
            url = base_url(self.settings, provider)  # raises the ConfigError that explains what is missing
            if self.connect is None:
                raise ConfigError(f"{provider} is not available")
            client = self.clients[provider] = self.connect(provider, url)
        return client

    async def close_clients(self) -> None:
        clients, self.clients = list(self.clients.values()), {}
        for client in clients:
            await client.aclose()

    def openapi_pec(self) -> OpenapiPecClient:
        """The openapi.it PEC client; ConfigError when its token or host is missing."""
        from pec_mcp.providers.openapi_pec import OpenapiPecClient

        openapi_pec_token(self.settings)
        return OpenapiPecClient(self.client("openapi_pec"))

    def mensatek(self) -> MensatekClient:
        """The Mensatek client (one per server, so its short cache is shared); ConfigError when not configured."""
        if self._mensatek is None:
            from pec_mcp.providers.mensatek import MensatekClient

            mensatek_credentials(self.settings)
            self._mensatek = MensatekClient(self.client("mensatek"))
        return self._mensatek

    def pec(self) -> PecSender:
        """The PEC Massiva send path; ConfigError when its credentials are missing."""
        if self._pec is None:
            from pec_mcp.providers.pecmassiva import PecMassivaClient
            from pec_mcp.sending import PecSender, pecmassiva_sender

            credentials = pecmassiva_credentials(self.settings)
            sender = pecmassiva_sender(self.settings) or credentials.username
            client = PecMassivaClient(self.client("pecmassiva"), credentials)
            self._pec = PecSender(client=client, store=self.store, settings=self.settings, sender=sender)
        return self._pec

    def inbox_index(self) -> InboxIndex:
        """The local index of the PEC Massiva inbox headers (one per environment and mailbox in the store)."""
        if self._inbox_index is None:
            from pec_mcp.inbox_index import InboxIndex
            from pec_mcp.sending import ACCOUNT

            self._inbox_index = InboxIndex(self.store, self.pec().client, ACCOUNT, environment=self.environment)
        return self._inbox_index


    def close_pec_mail(self) -> None:
        servers, self._pec_mail = self._pec_mail, None
        if servers is not None:
            servers.close()

    def account(self, name: str | None) -> Account:
        """The PEC account a tool call names (or the default one); InputError when unknown or ambiguous."""
        from pec_mcp.accounts import resolve_account

        return resolve_account(self.settings, name)

    def channel(self, account: Account) -> Channel:
        """How an account sends a PEC and reads its delivery (one per account for the server's life): the one place
        that picks PEC Massiva's API or a mailbox's SMTP and IMAP. ConfigError when the account cannot send."""
        found = self._channels.get(account.name)
        if found is None:
            from pec_mcp.channels import MailboxChannel, PecMassivaChannel

            if account.kind == "imap":
                from pec_mcp.accounts import require

                require(account, send=True)
                found = MailboxChannel(account, sender=lambda: self.mail_sender(account),
                                       mail=lambda: self.mail_account(account), store=self.store)
            else:
                found = PecMassivaChannel(account, self.pec(), on_sent=lambda: self.inbox_index().mark_stale())
            self._channels[account.name] = found
        return found

    def mail_account(self, account: Account) -> MailAccount:
        """The IMAP/SMTP operations of an IMAP account (one per account for the server's life)."""
        mail = self._mail_accounts.get(account.name)
        if mail is None:
            from pec_mcp.accounts import require
            from pec_mcp.mail_accounts import MailAccount
            from pec_mcp.mail_receipts import ReceiptIntake

            require(account)
            intake = ReceiptIntake(self.store, environment=self.environment, account=account.name,
                                   trust=self.trust_store(), publish=self.publish)
            mail = self._mail_accounts[account.name] = MailAccount(account, self.mail_endpoints(account),
                                                                   self.store, on_receipts=intake)
            if self.follow is not None:
                self.follow(mail)
        return mail

    def mail_endpoints(self, account: Account) -> MailEndpoints:
        """Where an IMAP account's servers are: the configured ones, or offline the simulator's."""
        from pec_mcp.accounts import mail_endpoints

        if account.simulated:
            return self._simulated_endpoints(account)
        return mail_endpoints(account)

    def mail_sender(self, account: Account) -> MailSender:
        """The SMTP send path of an IMAP account (through the ledger, paced per account)."""
        from pec_mcp.accounts import require
        from pec_mcp.mail_sending import MailSender

        require(account, send=True)
        return MailSender(account, self.mail_endpoints(account), self.store)

    def trust_store(self) -> TrustStore | None:
        """The accredited PEC providers' certificates: trust.pec_providers, else offline the simulator's list."""
        from pec_mcp.pecmail.signature import TrustStore

        if self._trust is None:
            path = self.settings.trust.pec_providers
            if path is not None:
                self._trust = TrustStore.from_file(path.expanduser())
            elif self.settings.env == "offline":
                self._trust = TrustStore.from_file(self.pec_mail().endpoints.trust_file)
        return self._trust

    def pec_mail(self) -> PecMailServers:
        """Offline: the simulator's PEC provider over SMTP and IMAP on loopback, started once."""
        if self._pec_mail is None:
            from pec_mcp.simulator.pecmail.servers import PecMailOptions, start_pec_mail_provider

            self._pec_mail = start_pec_mail_provider(
                PecMailOptions(delivery_delay=self.settings.simulator.delivery_delay))
        return self._pec_mail

    def _simulated_endpoints(self, account: Account) -> MailEndpoints:
        from pec_mcp.accounts import OFFLINE_PASSWORD, MailEndpoints
        from pec_mcp.pecmail.connection import Endpoint, Login

        servers = self.pec_mail()
        where = servers.endpoints
        if servers.provider.mailbox(account.address or "") is None:
            servers.provider.add_mailbox(account.address or "", OFFLINE_PASSWORD)
        # The simulated provider throttles SMTP at the account's own limit, as real providers do: pacing that holds
        # is never refused, and pacing that did not hold would show in the simulator's rate_limited count.
        servers.provider.limit_submissions(account.address or "", account.requests_per_second)
        known = {a.address: a.password for a in where.accounts}
        password = known.get(account.address or "", OFFLINE_PASSWORD)
        return MailEndpoints(imap=Endpoint(where.host, where.imap_port, "tls", where.ca_file),
                             smtp=Endpoint(where.host, where.smtp_port, "tls", where.ca_file),
                             login=Login(account.address or "", password), address=account.address or "")


class StateHolder:
    """The state of the running server, for the few handlers the SDK calls without a Context."""

    def __init__(self) -> None:
        self._state: AppState | None = None

    def set(self, state: AppState | None) -> None:
        self._state = state

    def get(self) -> AppState:
        if self._state is None:
            raise RuntimeError("the server is not running")
        return self._state


def pecmassiva_credentials(settings: Settings) -> Credentials:
    from pec_mcp.providers.pecmassiva import Credentials

    if settings.env == "offline":
        from pec_mcp.simulator import credentials as sim

        return Credentials(sim.PECMASSIVA_TOKEN, sim.PECMASSIVA_USERNAME, sim.PECMASSIVA_PASSWORD)
    section = settings.pecmassiva
    missing = [k for k in ("token", "username", "password") if getattr(section, k) is None]
    if missing:
        names = ", ".join(f"pecmassiva.{k}" for k in missing)
        raise ConfigError(
            f"PEC Massiva is not configured for the {settings.env} environment: {names} missing",
            hint="Set them in the config file or as PEC_MCP_PECMASSIVA__TOKEN, ...; see `pec-mcp check-config`.",
        )
    assert section.token is not None and section.username is not None and section.password is not None
    return Credentials(section.token.get_secret_value(), section.username, section.password.get_secret_value())


def openapi_pec_token(settings: Settings) -> str:
    if settings.env == "offline":
        from pec_mcp.simulator import credentials as sim

        return sim.OPENAPI_PEC_TOKEN
    if settings.openapi_pec.token is None:
        raise ConfigError(
            f"openapi.it PEC is not configured for the {settings.env} environment: openapi_pec.token missing",
            hint="Set it in the config file or as PEC_MCP_OPENAPI_PEC__TOKEN; see `pec-mcp check-config`.",
        )
    return settings.openapi_pec.token.get_secret_value()


def mensatek_credentials(settings: Settings) -> tuple[str, str]:
    if settings.env == "offline":
        from pec_mcp.simulator import credentials as sim

        return sim.MENSATEK_API_USER, sim.MENSATEK_API_TOKEN
    section = settings.mensatek
    missing = [k for k in ("api_user", "api_token") if getattr(section, k) is None]
    if missing:
        raise ConfigError(
            f"Mensatek is not configured for the {settings.env} environment: "
            + ", ".join(f"mensatek.{k}" for k in missing) + " missing",
            hint="Set them in the config file or as PEC_MCP_MENSATEK__API_USER / PEC_MCP_MENSATEK__API_TOKEN.",
        )
    assert section.api_user is not None and section.api_token is not None
    return section.api_user, section.api_token.get_secret_value()


def mensatek_sender(settings: Settings) -> str:
    if settings.env == "offline":
        from pec_mcp.simulator import credentials as sim

        return sim.MENSATEK_SENDER
    if not settings.mensatek.sender:
        raise ConfigError("mensatek.sender is not set", hint="Set the sender address validated in the Mensatek panel.")
    return settings.mensatek.sender


def base_url(settings: Settings, provider: ProviderName) -> str:
    """Where a provider is reached: the override, the environment's host, or the simulator offline."""
    url = settings.base_url(provider)
    if url is not None:
        return url
    if settings.env == "offline":
        return SIMULATOR_ORIGIN + SIMULATOR_MOUNTS[provider]
    raise ConfigError(
        f"{provider} has no {settings.env} host; set {provider}.base_url or choose another environment"
    )


@asynccontextmanager
async def open_state(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    publish: Callable[[str], Awaitable[None]] | None = None,
    client_options: ClientOptions | None = None,
) -> AsyncIterator[AppState]:
    """Open the store; provider clients, and offline without a transport the simulator, are made on first use.

    With the bulk toolset, the job runner works in the background until the server stops (``publish`` tells
    subscribers that a job resource changed), from the first job started or ``RUNNER_GRACE`` after start-up.
    """
    redactor = Redactor(settings.secret_values())
    # The embedded SQLite file is created and upgraded in place; a shared PostgreSQL database is upgraded only by
    # `pec-mcp migrate`, so that replicas of different versions never change its schema under each other.
    store = Store(store_location(settings.store), upgrade=settings.store.url is None)
    # A request that was on its way when a previous process died is unknown from now on, never resent.
    store.recover_interrupted()
    simulated = transport is None and settings.env == "offline"

    def connect(provider: ProviderName, url: str) -> httpx.AsyncClient:
        from pec_mcp.http import ClientOptions, build_client

        pacer: Pacer | None = send_pacer(settings, store) if provider == "pecmassiva" else None
        if simulated:
            # The simulator is made with the first client, not inside the first request: building it takes a
            # moment, which would otherwise come between a send's pacing slot and its arrival, bringing it closer
            # to the next send than the provider's limit allows.
            state.offline_transport().start()
        return build_client(provider=provider, base_url=url, pacer=pacer,
                            transport=state.offline_transport() if simulated else transport,
                            headers=_auth_headers(settings, provider), options=client_options or ClientOptions())

    state = AppState(settings=settings, store=store, redactor=redactor, connect=connect, simulated=simulated,
                     publish=publish)
    async with AsyncExitStack() as stack:
        stack.callback(store.close)
        stack.push_async_callback(state.close_clients)
        stack.callback(state.close_pec_mail)
        followers = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(followers.cancel_scope.cancel)  # stop following mailboxes before the store closes

        def start_following(mail: MailAccount) -> None:
            followers.start_soon(follow_mailbox, mail)

        state.follow = start_following
        if simulated:
            await _start_offline_callbacks(stack, state)
        if "bulk" in settings.tools.enabled:
            tasks = await stack.enter_async_context(anyio.create_task_group())
            tasks.start_soon(state.run_jobs, publish)
            # Stop the runner first when the server closes (callbacks run last-in, first-out).
            stack.callback(tasks.cancel_scope.cancel)
        yield state


async def follow_mailbox(mail: MailAccount) -> None:
    """Keep an IMAP account's index current while the server runs: receipts are read as they arrive."""
    await mail.sync.follow(mail.session)


async def _start_offline_callbacks(stack: AsyncExitStack, state: AppState) -> None:
    """Offline, the simulator's callbacks reach the webhook handlers directly, without an HTTP server.

    openapi.it callbacks go out as state changes; Mensatek's report webhooks are flushed by a small background task.
    Both are wired when the simulator is created, at the first provider request.
    """
    tasks = await stack.enter_async_context(anyio.create_task_group())
    stack.callback(tasks.cancel_scope.cancel)  # runs before the task group waits for its task

    def wire(simulator: Simulator) -> None:
        from pec_mcp.server.http.webhooks import (  # webhooks imports this module
            in_process_sender,
            pump_offline_reports,
            wire_offline_reports,
        )

        simulator.openapi_pec.send_callback = in_process_sender(lambda: state)
        wire_offline_reports(state, simulator)
        tasks.start_soon(pump_offline_reports, simulator)

    state.on_simulator = wire


def _auth_headers(settings: Settings, provider: ProviderName) -> dict[str, str]:
    """Client-wide auth headers: Bearer for openapi.it, Basic for Mensatek (PEC Massiva sets its own per call).

    Missing credentials give no header: the provider's tools then explain what to configure.
    """
    try:
        if provider == "openapi_pec":
            return {"Authorization": f"Bearer {openapi_pec_token(settings)}"}
        if provider == "mensatek":
            user, token = mensatek_credentials(settings)
            basic = base64.b64encode(f"{user}:{token}".encode()).decode("ascii")
            return {"Authorization": f"Basic {basic}"}
    except ConfigError:
        return {}
    return {}


def follow_up_policy(settings: Settings) -> FollowUpPolicy:
    """Receipts every 30 s per sending; offline the simulator is local and free, so every 2 s."""
    from pec_mcp.jobs import FollowUpPolicy

    return FollowUpPolicy(interval=2.0) if settings.env == "offline" else FollowUpPolicy()


def send_pacer(settings: Settings, store: Store) -> Pacer:
    """The PEC Massiva /send pacer, shared with every process using the same store and account."""
    # Offline every send goes to the simulator's account, whatever real settings are present.
    account = "simulator" if settings.env == "offline" else settings.pecmassiva.username or "unconfigured"
    return StorePacer(store, f"pecmassiva-send:{settings.env}:{account}", settings.sending.requests_per_second)
