"""The credentials the simulator accepts; the offline environment uses them, nothing else should."""

PECMASSIVA_TOKEN = "sim-pecmassiva-token"
PECMASSIVA_USERNAME = "demo@pecmassiva.com"
PECMASSIVA_PASSWORD = "sim-pecmassiva-password"

OPENAPI_PEC_TOKEN = "sim-openapi-token"

MENSATEK_API_USER = "demo-mensatek"
MENSATEK_API_TOKEN = "sim-mensatek-token"
MENSATEK_SENDER = "avisos@demo-mensatek.es"

# The simulator's PEC mail provider (SMTP + IMAP on loopback): address -> password.
PECMAIL_DOMAIN = "pec.simulatore.test"
PECMAIL_ACCOUNTS = {
    f"studio@{PECMAIL_DOMAIN}": "sim-studio-password",
    f"ufficio@{PECMAIL_DOMAIN}": "sim-ufficio-password",
}
