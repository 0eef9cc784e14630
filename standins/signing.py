"""A release key for the tests: a GnuPG key made in a throwaway home, exported as helm reads
keys (legacy keyring files: the secret one to sign, the public one to verify)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class GnupgUnavailableError(Exception):
    """gpg is missing (the message says what to install)."""


@dataclass(frozen=True)
class Keyring:
    """A signing key, as ``make package`` and ``helm verify`` take it."""

    key: str
    """The key's user id (``SIGNING_KEY``)."""
    secret: Path
    """Its secret keyring (``SIGNING_KEYRING``)."""
    public: Path
    """Its public keyring: what users verify with (``--keyring``)."""


def _gpg(home: Path, *args: str, stdin: str | None = None) -> bytes:
    done = subprocess.run(
        ["gpg", "--batch", "--no-tty", "--homedir", str(home), *args],
        input=stdin.encode() if stdin is not None else None,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise GnupgUnavailableError(f"gpg {' '.join(args)}: {done.stderr.decode()}")
    return done.stdout


@contextlib.contextmanager
def throwaway_keyring(directory: Path, name: str) -> Iterator[Keyring]:
    """A new RSA key for ``name`` (no passphrase) in a home of its own under ``directory``;
    the agent gpg starts for that home is stopped on the way out."""
    if shutil.which("gpg") is None:
        raise GnupgUnavailableError("gpg is not on PATH: apt-get install -y gnupg")
    home = directory / "gnupg"
    home.mkdir(mode=0o700)
    user = f"{name} <{name.lower().replace(' ', '-')}@release.test>"
    try:
        _gpg(
            home,
            "--gen-key",
            stdin="\n".join(
                [
                    "%no-protection",
                    "Key-Type: RSA",
                    "Key-Length: 2048",
                    f"Name-Real: {name}",
                    f"Name-Email: {name.lower().replace(' ', '-')}@release.test",
                    "Expire-Date: 1d",
                    "%commit",
                ]
            ),
        )
        secret, public = directory / "secring.gpg", directory / "pubring.gpg"
        secret.write_bytes(_gpg(home, "--export-secret-keys", user))
        public.write_bytes(_gpg(home, "--export", user))
        yield Keyring(key=user, secret=secret, public=public)
    finally:
        # Only this home's agent: gpgconf reaches it through the home's own socket.
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "all"],
            capture_output=True,
            timeout=30,
            check=False,
            env={**os.environ, "GNUPGHOME": str(home)},
        )
