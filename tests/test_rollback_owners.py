"""What a rollback cannot give back (adversarial pass 21, R3): a campaign's own undo of a Tweet it
had not retweeted itself may have removed the account owner's retweet. The API's answer to an undo
says only that the Tweet is not retweeted now, so the rollback cannot know; it lists those Tweets so
the operator is not told "nothing to undo" and left believing every account is as before."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

from bulkrt.core.items import Action
from bulkrt.ledger.undo import select_undo
from tests.test_rollback import OK, PRE
from tests.test_run import MakeWorld, run_cli

UNDONE = replace(OK, action=Action.UNDO, retweeted=False, preexisting=None, key="u")


def test_an_undo_of_a_tweet_the_campaign_never_retweeted_is_listed() -> None:
    """The campaign's undo of Tweet 20 with no retweet of its own before it (the owner's
    retweet, if there was one, is gone) is listed; its undo of a retweet it made is not (the
    rollback has nothing to give back there); its undo of a retweet it found in place is."""
    mine = replace(OK, tweet_id="21", key="k21")
    found = replace(PRE, tweet_id="22", key="k22")
    plan = select_undo(
        [
            UNDONE,
            mine,
            replace(UNDONE, tweet_id="21", key="u21"),
            found,
            replace(UNDONE, tweet_id="22", key="u22"),
        ],
        source="ledger.jsonl",
    )
    assert plan.undo == ()
    assert plan.owners_undone == (("acme", "20"), ("acme", "22"))
    assert any(
        "undid 2 Tweet(s) it had not retweeted itself" in line
        for line in plan.summary("undo.csv", include_preexisting=False)
    )


def test_a_rollback_of_another_campaign_does_not_list_them() -> None:
    """Only the selected campaigns' undos are listed."""
    other = replace(UNDONE, campaign="autumn")
    plan = select_undo([OK, other], source="ledger.jsonl", campaigns=("spring",))
    assert plan.owners_undone == ()


async def test_the_cli_names_them_in_text_and_json(make_world: MakeWorld) -> None:
    """Through the CLI on the sandbox: a campaign that undid the owner's own retweet (set in the
    sandbox before the run) gets a rollback that says so, in text and in `--json`, and the
    owner's retweet is indeed gone from the sandbox."""
    world = await make_world()
    owner = world.user_id("acct001")
    world.sandbox.state.retweets[owner].add("100")  # the owner's own retweet
    job = world.job([("acct001", "100", "undo"), ("acct001", "101", "retweet")])
    assert (await world.run(job)).returncode == 0
    assert world.retweets("acct001") == {"101"}
    undo = world.dir / "undo.csv"
    args = [sys.executable, "-m", "bulkrt", "rollback", str(world.ledger), "--out", str(undo)]
    text = await run_cli(args)
    assert text.returncode == 0, text.stderr.decode()
    out = text.stdout.decode()
    assert "undid 1 Tweet(s) it had not retweeted itself" in out
    assert "    acct001 100" in out
    answer: subprocess.CompletedProcess[bytes] = await run_cli([*args, "--force", "--json"])
    document = json.loads(answer.stdout)
    assert document["owners_undone"] == [{"account": "acct001", "tweet_id": "100"}]
    assert document["undo"] == 1
