"""Which host variables (and the files they name) may enter a sandbox: the project's decision.

A module only *declares* what it would use (`env` / `optional_env` in its `module.toml`). A
declared variable reaches the run only when the project allows it (`[evidence] pass_env` in
`fmbuild.toml`) or the verifier does (`fmbuild verify --pass-env NAME`), and its value names a
regular file, which is bound read-only. A module that pull request code can change must never be
able to ask for `AWS_SHARED_CREDENTIALS_FILE` and have the file's content land in a record.

Credential-shaped names are refused everywhere, with no way to force them: a record is published,
and no measurement in this manual needs a credential. `fmbuild.toml` naming one is a configuration
error; `--pass-env` naming one is a usage error.
"""

from __future__ import annotations

import re

# Parts of a variable name that mark a secret or a credential (matched on `_`-separated words and
# as substrings for the compound ones).
_HINTS = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "API_KEY", "APIKEY", "ACCESS_KEY",
          "PRIVATE", "AUTH", "SESSION", "COOKIE", "SIGNING", "PASSPHRASE")
# Well-known variables that name credentials or identities without saying so.
_KNOWN = {"KUBECONFIG", "NETRC", "DOCKER_CONFIG", "SSH_AUTH_SOCK", "GNUPGHOME", "GIT_ASKPASS", "SSH_ASKPASS",
          "BOTO_CONFIG", "AZURE_CONFIG_DIR", "CLOUDSDK_CONFIG", "PGPASSFILE", "VAULT_ADDR", "HF_HOME",
          "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "NPM_CONFIG_USERCONFIG"}
_PREFIXES = ("AWS_", "AZURE_", "GOOGLE_", "GCP_", "GCLOUD_", "GITHUB_", "GITLAB_", "HUGGING_FACE_", "HF_",
             "OPENAI_", "ANTHROPIC_", "SSH_", "GPG_")
_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def credential_shaped(name: str) -> bool:
    upper = name.upper()
    return upper in _KNOWN or upper.startswith(_PREFIXES) or any(h in upper for h in _HINTS)


def pass_env_problem(name: str) -> str:
    """Why `name` may not be passed into a sandbox ('' when it may)."""
    if not _NAME.match(name):
        return f"{name!r} is not an UPPER_CASE variable name"
    if credential_shaped(name):
        return (f"{name} looks like a credential; credentials never enter a sandbox "
                "(a run's output is published in its record)")
    return ""
