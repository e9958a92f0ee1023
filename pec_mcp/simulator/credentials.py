"""The credentials the simulator accepts; the offline environment uses them, nothing else should."""

PECMASSIVA_TOKEN = "sim-pecmassiva-token"
PECMASSIVA_USERNAME = "demo@pecmassiva.com"
PECMASSIVA_PASSWORD = "sim-pecmassiva-password"

OPENAPI_PEC_TOKEN = "sim-openapi-token"

MENSATEK_API_USER = "demo-mensatek"
MENSATEK_API_TOKEN = "sim-mensatek-token"
MENSATEK_SENDER = "avisos@demo-mensatek.es"
