"""Inputs of every format with real-looking private persons planted in them (for pseudonymization tests).

Each builder writes small inputs under a folder and returns nothing; `PLANTED` lists every
identity string that must never appear in a pseudonymized dataset (with --redact-text), and
`PUBLIC` the channel names and usernames that must stay readable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"

USER_ID = 5550123987
MENTIONED_ID = 5550456321
SENDER = "Zinaida Kvashnina"
MENTIONED = "Oleksandr Brovchenko"
SIGNER = "Yevheniia Marchuk"
FORWARDER = "Taras Hnatyshyn"
REACTOR = "Myroslava Dzhus"
USERNAME = "zina_kvash77"
PHONE = "+7 912 345-67-89"
EMAIL = "zina.kvash@example.org"
CHANNEL_ID = 1999888777
CHANNEL_TITLE = "Daily Weather Desk"
CHANNEL_USERNAME = "weatherdesk_daily"
GROUP_ID = 1777666555

PLANTED = [
    *(n for name in (SENDER, MENTIONED, SIGNER, FORWARDER, REACTOR) for n in (name, name.split()[1])),
    USERNAME,
    PHONE,
    "345-67-89",
    "79123456789",
    EMAIL,
    "zina.kvash",
    str(USER_ID),
    str(MENTIONED_ID),
]
PUBLIC = [CHANNEL_TITLE, CHANNEL_USERNAME, "Example Channel", "examplechannel"]
PERSON_TEXT = f"ping @{USERNAME} and {MENTIONED}, call {PHONE} or {EMAIL}"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _copy(folder: Path, name: str, replacements: dict[str, str]) -> None:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    for old, new in replacements.items():
        assert old in text, (name, old)
        text = text.replace(old, new)
    _write(folder / name.replace("/", "-"), text)


# --- tdesktop-json ------------------------------------------------------------------------------


def _td_message(mid: int, text: Any, **extra: Any) -> dict[str, Any]:
    msg = {"id": mid, "type": "message", "date": "2024-03-31T02:30:05", "date_unixtime": str(1711845005 + mid)}
    msg.update(extra)
    msg["text"] = text
    return msg


def _td_person_parts() -> list[Any]:
    return [
        {"type": "bold", "text": "ping"},
        " ",
        {"type": "mention", "text": f"@{USERNAME}"},
        " and ",
        {"type": "mention_name", "text": MENTIONED, "user_id": MENTIONED_ID},
        ", call ",
        {"type": "phone", "text": PHONE},
        " or ",
        {"type": "email", "text": EMAIL},
        " #news",
    ]


def tdesktop_json(folder: Path) -> None:
    sender = {"from": SENDER, "from_id": f"user{USER_ID}"}
    channel_from = {"from": CHANNEL_TITLE, "from_id": f"channel{CHANNEL_ID}"}
    reactions = [
        {"type": "emoji", "count": 2, "emoji": "👍", "recent": [{"from": REACTOR, "from_id": "user5550777888"}]}
    ]
    channel = [
        _td_message(1, _td_person_parts(), author=SIGNER, reactions=reactions, **channel_from),
        _td_message(2, f"forwarded news, see @{CHANNEL_USERNAME}", forwarded_from=FORWARDER, **channel_from),
    ]
    group = [
        _td_message(20, _td_person_parts(), **sender),
        {**_td_message(21, f"bad date from {SENDER} @{USERNAME}", **sender), "date_unixtime": "soon", "date": "x"},
        {
            "id": 22,
            "type": "service",
            "date": "2024-03-31T02:31:00",
            "date_unixtime": "1711845060",
            "actor": SENDER,
            "actor_id": f"user{USER_ID}",
            "action": "invite_members",
            "members": [REACTOR],
            "text": "",
        },
        _td_message(
            23,
            "",
            contact_information={"first_name": "Zinaida", "last_name": "Kvashnina", "phone_number": PHONE},
            **sender,
        ),
    ]
    private = [_td_message(30, f"hi, my mail is {EMAIL}", **sender)]
    exports = {
        "channel.json": {"name": CHANNEL_TITLE, "type": "public_channel", "id": CHANNEL_ID, "messages": channel},
        "group.json": {"name": "Weather Talk", "type": "public_supergroup", "id": GROUP_ID, "messages": group},
        "private.json": {"name": SENDER, "type": "personal_chat", "id": USER_ID, "messages": private},
    }
    for name, doc in exports.items():
        _write(folder / name, json.dumps(doc, ensure_ascii=False, indent=1))


# --- telethon-json --------------------------------------------------------------------------------


def _tl(mid: int, peer: dict, message: str, **extra: Any) -> dict[str, Any]:
    obj = {"_": "Message", "id": mid, "peer_id": peer, "date": "2024-04-01T09:00:00+00:00", "message": message}
    obj.update(extra)
    return obj


def _tl_entities(text: str) -> list[dict[str, Any]]:
    def at(kind: str, needle: str, **extra: Any) -> dict[str, Any]:
        return {"_": kind, "offset": text.index(needle), "length": len(needle), **extra}

    return [
        {"_": "MessageEntityBold", "offset": 0, "length": len(text)},
        at("MessageEntityMention", f"@{USERNAME}"),
        at("MessageEntityMentionName", MENTIONED, user_id=MENTIONED_ID),
        at("MessageEntityPhone", PHONE),
        at("MessageEntityEmail", EMAIL),
    ]


def telethon_json(folder: Path) -> None:
    user = {"_": "PeerUser", "user_id": USER_ID}
    group = {"_": "PeerChannel", "channel_id": GROUP_ID}
    channel = {"_": "PeerChannel", "channel_id": CHANNEL_ID}
    lines = [
        _tl(
            5,
            channel,
            "storm warning",
            post=True,
            post_author=SIGNER,
            fwd_from={"_": "MessageFwdHeader", "date": "2024-03-30T08:00:00+00:00", "from_name": FORWARDER},
            reactions={"_": "MessageReactions", "results": [], "recent_reactions": [{"peer_id": user}]},
        ),
        _tl(20, group, PERSON_TEXT, post=False, from_id=user, entities=_tl_entities(PERSON_TEXT)),
        _tl(31, user, "private hello", from_id=user),
        _tl(32, group, f"bad date @{USERNAME}", from_id=user, date="not a date"),
    ]
    text = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
    _write(folder / "dump.jsonl", text + f'\n{{"_": "Message", "id": 40, "message": "{SENDER} broken\n')


# --- HTML and text formats copied from the fixtures -----------------------------------------------


def tdesktop_html(folder: Path) -> None:
    _copy(folder, "tdesktop-html/joined_sender.html", {"Alice Example": SENDER, "Bob Sample": MENTIONED})
    _copy(folder, "tdesktop-html/reactions.html", {"Alice Example": REACTOR, "Bob Sample": SIGNER})
    _copy(folder, "tdesktop-html/forwarded.html", {"Alice Example": SENDER, "Source Channel": FORWARDER})
    _copy(
        folder,
        "tdesktop-html/text_entities.html",
        {"ExampleUser": USERNAME, "info@example.org": EMAIL, "line two:": f"line two: {PHONE}"},
    )
    _copy(folder, "tdesktop-html/bad_date.html", {"Example Channel": SENDER})


def tme_html(folder: Path) -> None:
    _copy(folder, "tme-html/forwarded.html", {"Dana Placeholder": FORWARDER})
    _copy(folder, "tme-html/edited.html", {"Jane Placeholder": SIGNER})
    _copy(folder, "tme-html/text_entities.html", {"ExampleUser": USERNAME, "line two:": f"line two: {EMAIL}"})
    _copy(folder, "tme-html/bad_posts.html", {">no id<": f">no id, ask {EMAIL}<"})


def mirror(folder: Path) -> None:
    _copy(
        folder,
        "mirror/post.txt",
        {"ExamplePartner": USERNAME, "from the example desk.": f"from the example desk, call {PHONE} or {EMAIL}."},
    )


def snscrape_jsonl(folder: Path) -> None:
    post = {
        "_type": "snscrape.modules.telegram.TelegramPost",
        "url": f"https://t.me/s/{CHANNEL_USERNAME}/10",
        "date": "2024-03-31T00:30:05+00:00",
        "content": f"Storm by @{USERNAME}, call {PHONE}, {EMAIL}; see @{CHANNEL_USERNAME}",
        "outlinks": [f"https://t.me/{USERNAME}", "https://t.me/otherchannel/55", f"mailto:{EMAIL}"],
    }
    _write(folder / "posts.jsonl", json.dumps(post) + f'\n{{"content": "{SENDER} broken\n')


def tgdataset(folder: Path) -> None:
    good = {
        "message": f"**Storm** by [{MENTIONED}](tg://user?id={MENTIONED_ID}), call {PHONE} or {EMAIL} @{USERNAME}",
        "date": 1711845000.0,
        "author": USER_ID,
        "is_forwarded": False,
        "forwarded_from_id": None,
        "forwarded_message_date": None,
    }
    bad = {"message": f"[{MENTIONED}](tg://user?id={MENTIONED_ID}) later", "date": "yesterday", "author": USER_ID}
    doc = {
        str(CHANNEL_ID): {
            "username": CHANNEL_USERNAME,
            "title": CHANNEL_TITLE,
            "text_messages": {"10": good, "11": bad},
            "generic_media": {},
        }
    }
    _write(folder / "tgdataset.json", json.dumps(doc, ensure_ascii=False))


BUILDERS = {
    "tdesktop-json": tdesktop_json,
    "tdesktop-html": tdesktop_html,
    "telethon-json": telethon_json,
    "tme-html": tme_html,
    "mirror": mirror,
    "snscrape-jsonl": snscrape_jsonl,
    "tgdataset": tgdataset,
}


def plant_all(root: Path) -> Path:
    """Every format's planted inputs under `root/<format>/`; returns `root`."""
    for fmt, build in BUILDERS.items():
        build(root / fmt)
    return root
