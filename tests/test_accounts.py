"""The accounts file: loading, env: secrets, redaction, the mode warning, and token write-back."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bulkrt.errors import AccountsError
from bulkrt.logs import redact_secrets
from bulkrt.shell.accounts import load_accounts, save_oauth2_tokens
from bulkrt.shell.accounts_file import recover_write_back
from tests.test_mistakes import bulkrt

DOCUMENT: dict[str, object] = {
    "accounts": {
        "acme": {
            "user_id": "1072250532645998596",
            "oauth1": {
                "consumer_key": "ck-acme",
                "consumer_secret": "env:TEST_ACME_CONSUMER_SECRET",
                "access_token": "1072250532645998596-atacme",
                "access_token_secret": "ats-acme-0123456789",
            },
        },
        "beta": {
            "user_id": 2244994945,
            "oauth2": {
                "client_id": "cid-beta",
                "client_secret": None,
                "access_token": "env:TEST_BETA_ACCESS",
                "refresh_token": "env:TEST_BETA_REFRESH",
                "expires_at": "2026-11-26T02:00:00Z",
            },
            "note": "kept as written",
        },
    },
    "comment": "top-level keys survive write-back",
}
SECRETS = {
    "TEST_ACME_CONSUMER_SECRET": "cs-acme-0123456789",
    "TEST_BETA_ACCESS": "at-beta-0123456789",
    "TEST_BETA_REFRESH": "rt-beta-0123456789",
}


@pytest.fixture
def accounts_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A valid accounts file, mode 0600, with its env: variables set."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps(DOCUMENT, indent=2))
    path.chmod(0o600)
    return path


def _edit(path: Path, *keys: str, value: object) -> None:
    document = json.loads(path.read_text())
    node = document
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    path.write_text(json.dumps(document))


class TestLoad:
    def test_credentials_are_loaded_with_env_secrets_resolved(self, accounts_file: Path) -> None:
        """env: values are read from the environment; a numeric user_id becomes a string."""
        accounts = load_accounts(accounts_file)
        assert sorted(accounts) == ["acme", "beta"]
        acme, beta = accounts["acme"], accounts["beta"]
        assert acme.oauth1 is not None and acme.oauth1.consumer_secret == "cs-acme-0123456789"
        assert beta.user_id == "2244994945"
        assert beta.oauth2 is not None and beta.oauth2.refresh_token == "rt-beta-0123456789"
        assert beta.oauth2.expires_at == datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
        assert beta.oauth2.client_secret is None

    def test_repr_shows_no_secret(self, accounts_file: Path) -> None:
        """The repr of the accounts and their credentials never contains a secret value."""
        accounts = load_accounts(accounts_file)
        text = repr(accounts) + repr(accounts["acme"].oauth1) + repr(accounts["beta"].oauth2)
        assert "ck-acme" in text  # identifiers stay visible
        for secret in [*SECRETS.values(), "ats-acme-0123456789", "1072250532645998596-atacme"]:
            assert secret not in text

    def test_loaded_secrets_are_redacted_from_logs(self, accounts_file: Path) -> None:
        """After loading, a secret inside any log value is masked by the redacting processor."""
        load_accounts(accounts_file)
        event = redact_secrets(None, "info", {"event": "x", "detail": "got rt-beta-0123456789"})
        assert event["detail"] == "got [redacted]"

    def test_every_problem_is_reported_by_json_path(
        self, accounts_file: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Two bad accounts give all their problems at once, each named by its JSON path."""
        monkeypatch.delenv("TEST_BETA_REFRESH")
        _edit(accounts_file, "accounts", "acme", "oauth1", "access_token", value="")
        _edit(accounts_file, "accounts", "beta", "oauth2", "expires_at", value="tomorrow")
        with pytest.raises(AccountsError) as caught:
            load_accounts(accounts_file)
        name = str(accounts_file)
        assert [str(p) for p in caught.value.problems] == [
            f"{name}: accounts.acme.oauth1.access_token: must be a non-empty string",
            f"{name}: accounts.beta.oauth2.refresh_token: environment variable "
            "TEST_BETA_REFRESH is not set",
            f"{name}: accounts.beta.oauth2.expires_at: must be an ISO-8601 time with a zone, "
            "e.g. 2026-11-26T02:00:00Z",
        ]

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("[]", ": (top level): must be a JSON object"),
            ('{"accounts": {}}', ": accounts: no accounts"),
            ('{"accounts": {"a": {"user_id": "1"}}}', ": accounts.a: needs oauth1 or oauth2"),
            ('{\n"accounts": }', ":2: json: Expecting value (column 13)"),
        ],
    )
    def test_malformed_files_are_named(self, tmp_path: Path, text: str, expected: str) -> None:
        """Structural mistakes are reported with the file and where in it they are."""
        path = tmp_path / "a.json"
        path.write_text(text)
        path.chmod(0o600)
        with pytest.raises(AccountsError) as caught:
            load_accounts(path)
        assert str(caught.value.problems[0]).startswith(f"{path}{expected}")

    def test_missing_file_is_an_input_error(self, tmp_path: Path) -> None:
        """A missing accounts file is an AccountsError naming it, not a traceback."""
        with pytest.raises(AccountsError, match=r"nope\.json: file: no such file"):
            load_accounts(tmp_path / "nope.json")


class TestPermissionWarning:
    def test_group_readable_file_is_warned_about(self, accounts_file: Path) -> None:
        """A file others can read logs a warning with its mode and the chmod that fixes it."""
        accounts_file.chmod(0o640)
        with capture_logs() as logs:
            load_accounts(accounts_file)
        assert logs == [
            {
                "event": "accounts_file_readable_by_others",
                "log_level": "warning",
                "path": str(accounts_file),
                "mode": "0640",
                "hint": f"chmod 600 {accounts_file}",
            }
        ]

    def test_private_file_is_not_warned_about(self, accounts_file: Path) -> None:
        """A 0600 file loads without any warning."""
        with capture_logs() as logs:
            load_accounts(accounts_file)
        assert logs == []


class TestWriteBack:
    def _save(self, path: Path, access: str, refresh: str | None) -> None:
        save_oauth2_tokens(
            path,
            "beta",
            access_token=access,
            refresh_token=refresh,
            expires_at=datetime(2026, 11, 26, 4, 0, tzinfo=UTC),
        )

    def test_refreshed_tokens_are_written_and_unchanged_env_refs_kept(
        self, accounts_file: Path
    ) -> None:
        """New tokens are written; an env: reference whose value did not change stays as written."""
        self._save(accounts_file, "at-new-0123456789", SECRETS["TEST_BETA_REFRESH"])
        document = json.loads(accounts_file.read_text())
        oauth2 = document["accounts"]["beta"]["oauth2"]
        assert oauth2["access_token"] == "at-new-0123456789"
        assert oauth2["refresh_token"] == "env:TEST_BETA_REFRESH"
        assert oauth2["expires_at"] == "2026-11-26T04:00:00Z"
        assert document["accounts"]["acme"] == DOCUMENT["accounts"]["acme"]  # type: ignore[index]
        assert document["accounts"]["beta"]["note"] == "kept as written"
        assert document["comment"] == "top-level keys survive write-back"
        reloaded = load_accounts(accounts_file)["beta"].oauth2
        assert reloaded is not None and reloaded.access_token == "at-new-0123456789"

    def test_write_back_keeps_the_mode_and_leaves_no_temporary_file(
        self, accounts_file: Path
    ) -> None:
        """The rewritten file keeps mode 0600 and the directory holds no leftovers."""
        self._save(accounts_file, "at-new-0123456789", "rt-new-0123456789")
        assert stat.S_IMODE(accounts_file.stat().st_mode) == 0o600
        leftovers = sorted(p.name for p in accounts_file.parent.iterdir())
        assert leftovers == ["accounts.json", "accounts.json.lock"]

    def test_a_crash_before_the_rename_leaves_the_old_file_whole(
        self, accounts_file: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If the process dies before the rename, the old file is intact and no temp file stays."""
        before = accounts_file.read_bytes()

        def crash(src: str, dst: str) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(os, "replace", crash)
        with pytest.raises(KeyboardInterrupt):
            self._save(accounts_file, "at-new-0123456789", "rt-new-0123456789")
        assert accounts_file.read_bytes() == before
        assert not list(accounts_file.parent.glob(".accounts.json.*.tmp"))

    def test_new_tokens_are_registered_for_redaction(self, accounts_file: Path) -> None:
        """A refreshed token is masked in logs from the moment it is saved."""
        self._save(accounts_file, "at-fresh-0123456789", None)
        event = redact_secrets(None, "info", {"event": "x", "v": "at-fresh-0123456789"})
        assert event["v"] == "[redacted]"


class TestCrashLeftovers:
    def test_an_older_or_incomplete_leftover_is_named_not_adopted(
        self, accounts_file: Path
    ) -> None:
        """A leftover temporary file holding no token newer than the accounts file's is named as
        such (no whole-file `mv` is suggested: it would bring back spent tokens); an incomplete
        one is named as such; neither replaces the file."""
        before = accounts_file.read_bytes()
        older = accounts_file.with_name(".accounts.json.old123.tmp")
        older.write_bytes(before)
        os.utime(older, (1, 1))
        broken = accounts_file.with_name(".accounts.json.brk456.tmp")
        broken.write_text('{"accounts": {"acme": ')
        notes = recover_write_back(accounts_file)
        assert accounts_file.read_bytes() == before
        assert any(str(older) in note and "holds no token newer" in note for note in notes)
        assert not any("mv " in note for note in notes)
        assert any("incomplete" in note and str(broken) in note for note in notes)

    def test_a_newer_complete_leftover_is_adopted_and_made_private(
        self, accounts_file: Path
    ) -> None:
        """A complete temporary file newer than the accounts file (a write-back killed before its
        rename) replaces it, with the file's mode narrowed to at most 0600."""
        accounts_file.chmod(0o644)
        document = json.loads(accounts_file.read_text())
        document["accounts"]["beta"]["oauth2"]["refresh_token"] = "rt-rotated-0123456789"
        leftover = accounts_file.with_name(".accounts.json.new789.tmp")
        leftover.write_text(json.dumps(document))
        notes = recover_write_back(accounts_file)
        assert len(notes) == 1 and "adopted .accounts.json.new789.tmp" in notes[0]
        written = json.loads(accounts_file.read_text())["accounts"]["beta"]["oauth2"]
        assert written["refresh_token"] == "rt-rotated-0123456789"
        assert stat.S_IMODE(accounts_file.stat().st_mode) == 0o600
        assert not leftover.exists()

    def test_a_complete_leftover_is_adopted_after_an_account_was_added_or_removed(
        self, accounts_file: Path
    ) -> None:
        """A whole leftover of a write-back killed before its rename, read after the operator
        added an account to the file (or removed one): its newer tokens are adopted for the
        accounts both hold, and the added account is kept (adv22 F6: it was called
        "incomplete" and left alone, and the run said "authorise again")."""
        document = json.loads(accounts_file.read_text())
        rotated = json.loads(json.dumps(document))
        rotated["accounts"]["beta"]["oauth2"]["refresh_token"] = "rt-rotated-0123456789"
        rotated["accounts"]["beta"]["oauth2"]["expires_at"] = "2099-01-01T00:00:00+00:00"
        leftover = accounts_file.with_name(".accounts.json.k1l123.tmp")
        leftover.write_text(json.dumps(rotated))
        document["accounts"]["gamma"] = json.loads(json.dumps(document["accounts"]["acme"]))
        accounts_file.write_text(json.dumps(document))
        notes = recover_write_back(accounts_file)
        assert not any("incomplete" in note for note in notes), notes
        written = json.loads(accounts_file.read_text())["accounts"]
        assert written["beta"]["oauth2"]["refresh_token"] == "rt-rotated-0123456789"
        assert "gamma" in written and "acme" in written


PASTED_SECRET = "kr8XOGAqYubE3xPq9Lw2sZrT0aBcDeFgHiJkLmNoPqRsT"  # 45 characters


@pytest.mark.parametrize(
    "name",
    [PASTED_SECRET, "1036518367961303124-TVXpxJ9", "aB" * 10 + "c"],
    ids=["45-char secret", "not a name", "21 characters in mixed case"],
)
def test_validate_never_quotes_a_secret_pasted_after_env(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bulkrt validate` with `env:<not a short variable name>` exits 2 giving the length only,
    and no 6-character piece of the value appears in what it prints."""
    document = json.loads(json.dumps(DOCUMENT))
    document["accounts"]["acme"]["oauth1"]["access_token_secret"] = f"env:{name}"
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps(document))
    accounts.chmod(0o600)
    (tmp_path / "job.csv").write_text("account,tweet_id,action\nacme,20,retweet\n")
    monkeypatch.delenv(name, raising=False)  # the environment the command gets
    for variable, value in (("TEST_ACME_CONSUMER_SECRET", "cs"), ("TEST_BETA_ACCESS", "a"),
                            ("TEST_BETA_REFRESH", "r")):  # fmt: skip
        monkeypatch.setenv(variable, value)
    done = bulkrt("validate", "job.csv", "--accounts", "accounts.json", cwd=tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert (
        f"accounts.acme.oauth1.access_token_secret: names an environment variable that is not "
        f"set ({len(name)} characters, not shown: a secret pasted after env:?)"
    ) in out
    assert not any(name[i : i + 6] in out for i in range(len(name) - 5)), out
