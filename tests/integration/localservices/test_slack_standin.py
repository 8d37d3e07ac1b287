from __future__ import annotations

from slack_sdk.webhook import WebhookClient

from stockpipe_dev.localservices.slack_standin import SlackWebhookStandin


def test_message_sent_by_slack_sdk_is_recorded(slack_standin: SlackWebhookStandin) -> None:
    response = WebhookClient(slack_standin.webhook_url()).send(
        text="stockpipe: 3 files loaded", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "*3 files*"}}]
    )
    assert response.status_code == 200
    assert response.body == "ok"
    assert slack_standin.texts() == ["stockpipe: 3 files loaded"]
    assert slack_standin.messages[0]["payload"]["blocks"][0]["text"]["text"] == "*3 files*"


def test_rate_limited_post_is_answered_like_slack(slack_standin: SlackWebhookStandin) -> None:
    slack_standin.fail_next(1, status=429)
    response = WebhookClient(slack_standin.webhook_url()).send(text="first")
    assert response.status_code == 429
    assert response.headers.get("Retry-After") == ["1"] or response.headers.get("Retry-After") == "1"
    assert slack_standin.texts() == []
