"""The job inputs' stand-ins (a Crypt4GH collection and a key handler) live in the dev stack; the
tests use the same ones."""

from hatchway_dev.inputs import KEY_HANDLER_TOKEN, SOURCE_TOKEN, InputsStandIn, Keypair, encrypt

__all__ = ["KEY_HANDLER_TOKEN", "SOURCE_TOKEN", "InputsStandIn", "Keypair", "encrypt"]
