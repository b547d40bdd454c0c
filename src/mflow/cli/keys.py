"""``mflow keys NAME``: a new CURVE key pair in the certificate format ZeroMQ tools share."""

from __future__ import annotations

from pathlib import Path

import click

from mflow.security import create_keys

from ._main import CONTEXT_SETTINGS, run

__all__ = ["command", "main"]

HELP = """Create a CURVE key pair NAME.key (public) and NAME.key_secret (secret).

\b
The files are czmq certificates, as pyzmq's zmq.auth and other ZeroMQ tools read and
write them. Give NAME.key_secret to the side it belongs to (--curve-secret-key), NAME.key
to its peers (--curve-server-key, or into their --curve-allow folder). Existing files are
never overwritten; the secret file is readable by its owner only.

\b
Examples:
  # a CURVE-protected split with one allowed client
  mflow keys split -d keys/            # on the split machine
  mflow keys viewer -d clients/        # on the client; copy clients/viewer.key over
  mflow split tcp://detector:9999 tcp://*:9001 \\
      --curve-secret-key keys/split.key_secret --curve-allow clients/
  mflow stats tcp://split-host:9001 \\
      --curve-server-key split.key --curve-secret-key clients/viewer.key_secret
"""


@click.command(
    "keys", help=HELP, short_help="Create a CURVE key pair.", context_settings=CONTEXT_SETTINGS
)
@click.argument("name")
@click.option(
    "-d",
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where to write the two files.",
)
def command(name: str, directory: Path) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise click.BadParameter(f"{name!r} is no file name", param_hint="NAME")
    public, secret = create_keys(directory, name)
    click.echo(f"public key: {public}")
    click.echo(f"secret key: {secret}")


def main() -> None:
    """Entry point of ``mflow keys``."""
    run(command)
