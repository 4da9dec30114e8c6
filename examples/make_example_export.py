"""Write examples/harbor_city_dispatch/result.json: a small, fully synthetic Telegram Desktop
channel export (a fictional local news channel; no real people or channels) in tdesktop's own
layout. Deterministic: rerunning gives the same bytes.

    python examples/make_example_export.py
"""

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

LOCAL = timezone(timedelta(hours=2))  # the exporting computer's zone (dates are local, no offset)
CHANNEL, CHANNEL_ID = "Harbor City Dispatch", 1987654321
TOPICS = {
    "ferry": "The harbor ferry timetable changes on Monday; night crossings return.",
    "weather": "Storm warning for the coast tonight, gusts up to 90 km/h expected.",
    "council": "City council approved the new bike lane plan after a long debate.",
    "market": "The Saturday fish market moves to Pier 4 during the renovation.",
    "culture": "Free open-air concert at Lighthouse Park this weekend.",
    "transit": "Tram line 3 is suspended between Dock Street and Old Town until Friday.",
}
REACTIONS = ["👍", "❤", "🔥", "😢", "🤔", "👏"]
NOT_INCLUDED = "(File not included. Change data exporting settings to download.)"


def stamp(msg, key, moment):
    msg[key] = moment.astimezone(LOCAL).strftime("%Y-%m-%dT%H:%M:%S")
    msg[key + "_unixtime"] = str(int(moment.timestamp()))


def text_parts(rng, topic, body):
    parts = [{"type": "bold", "text": topic.capitalize() + " update"}, "\n" + body + " "]
    parts.append({"type": "hashtag", "text": "#" + topic})
    if rng.random() < 0.4:
        parts += [" ", {"type": "hashtag", "text": "#harborcity"}]
    if rng.random() < 0.3:
        parts += ["\nDetails: ", {"type": "text_link", "text": "city site", "href": "https://example.org/" + topic}]
    if rng.random() < 0.2:
        parts += ["\n🌊 via ", {"type": "mention", "text": "@harbor_weather_desk"}]
    return parts


def entities(parts):
    return [p if isinstance(p, dict) else {"type": "plain", "text": p} for p in parts]


def messages(rng):
    moment = datetime(2024, 1, 3, 7, 30, tzinfo=UTC)
    first = {"id": 1, "type": "service"}
    stamp(first, "date", moment)
    first.update(
        actor=CHANNEL,
        actor_id=f"channel{CHANNEL_ID}",
        action="create_channel",
        title=CHANNEL,
        text="",
        text_entities=[],
    )
    yield first
    for mid in range(2, 121):
        moment += timedelta(hours=rng.randint(8, 30), minutes=rng.randint(0, 59))
        msg = {"id": mid, "type": "message"}
        stamp(msg, "date", moment)
        if rng.random() < 0.15:
            stamp(msg, "edited", moment + timedelta(minutes=rng.randint(2, 90)))
        msg.update({"from": CHANNEL, "from_id": f"channel{CHANNEL_ID}"})
        if rng.random() < 0.3:
            msg["author"] = rng.choice(["Night desk", "Morning desk"])
        if rng.random() < 0.25:
            msg["photo"] = NOT_INCLUDED
            msg["width"], msg["height"] = 1280, 853
        topic = rng.choice(sorted(TOPICS))
        if rng.random() < 0.5:
            parts = text_parts(rng, topic, TOPICS[topic])
            msg["text"], msg["text_entities"] = parts, entities(parts)
        else:
            plain = TOPICS[topic]
            msg["text"], msg["text_entities"] = plain, [{"type": "plain", "text": plain}]
        if rng.random() < 0.7:
            chosen = rng.sample(REACTIONS, rng.randint(1, 3))
            msg["reactions"] = sorted(
                ({"type": "emoji", "count": rng.randint(1, 60), "emoji": e} for e in chosen), key=lambda r: -r["count"]
            )
        yield msg


def main():
    rng = random.Random(20240501)
    chat = {"name": CHANNEL, "type": "public_channel", "id": CHANNEL_ID, "messages": list(messages(rng))}
    out = Path(__file__).parent / "harbor_city_dispatch" / "result.json"
    out.write_text(json.dumps(chat, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
