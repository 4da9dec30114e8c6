"""Keyed pseudonymization of the persons in post records (`convert --pseudonymize --key-file KEY`).

A pseudonym is `<kind>:<hex>`: the first 16 hex digits (64 bits) of HMAC-SHA256(key, identity),
where the identity is a normalized string (`user123`, `chat123`, `name:<casefolded name>`,
`username:<lowercase>`, `phone:<digits>`, `email:<lowercase>`). Integer fields (chat ids,
`entities.user_id`) get the same digest as an integer: 2^62 + (first 64 bits >> 2), so a
pseudonymized id is always >= 2^62, above every real Telegram id. Without the key nobody can
test a guess; with the same key every run, partition and format gives the same pseudonym.

The policy is data: the `x-pii` (kind) and `x-pii-scope` (when it applies) annotations of the
JSON Schema say which fields are transformed and how; docs/pseudonymization.md explains both.
The key lives only in memory (TaskSpec carries its bytes to workers); the manifest records its
fingerprint, never the key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa

from .errors import OutputError, SchemaError, UsageError
from .normalize import post_url
from .pseudonymize_text import post_link_usernames, redact_link, redact_text, scrub_raw, scrub_string
from .schema import load_schema

KEY_BYTES = 32
HEX_DIGITS = 16
INT_BASE = 1 << 62
FINGERPRINT_LABEL = b"tgexport:key-fingerprint:v1"
METHOD_VERSION = 1
PERSON_CHATS = frozenset({"private", "bot", "saved"})
GROUP_CHATS = frozenset({"channel", "supergroup", "group"})
PUBLIC_ONLY_FORMATS = frozenset({"tme-html", "mirror", "snscrape-jsonl", "tgdataset"})  # public channels only
KINDS = {
    "sender_id": {"sender"},
    "person_name": {"sender", "forward", "person"},
    "user_id": {"person"},
    "chat_id": {"chat", "forward"},
    "chat_username": {"chat", "forward"},
    "chat_name": {"chat"},
    "chat_url": {"chat"},
    "usernames": {"mention"},
    "free_text": {"text"},
    "entities": {"text"},
    "urls": {"mention"},
}
CONTEXT_FIELDS = ("chat_type", "source_format", "post_id", "forward_from_post_id", "kind")
PEER_RE = re.compile(r"^(user|channel|chat)([0-9]+)$")


# --- keys --------------------------------------------------------------------------------------


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def fingerprint(key: bytes) -> str:
    """Identifies a key without revealing it: HMAC of a fixed label, first 16 hex digits."""
    return hmac.new(key, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:HEX_DIGITS]


def write_key(path: Path, key: bytes) -> None:
    """Create `path` (mode 0600) holding the key as 64 hex digits; never overwrite."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise OutputError(
            f"{path} already exists; keygen never overwrites a key",
            hint="choose another path (a replaced key makes every earlier pseudonym unlinkable)",
        ) from None
    except OSError as exc:
        raise OutputError(
            f"cannot create {path}: {exc.strerror or exc}", hint="choose a folder you can write to"
        ) from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(key.hex() + "\n")


def load_key(path: Path) -> bytes:
    """A key file written by `tgexport keygen` (64 hex digits; a raw 32-byte file is accepted)."""
    hint = "create one with `tgexport keygen KEY` and keep it outside the dataset"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"key file {path} does not exist", hint=hint) from None
    except OSError as exc:
        raise UsageError(f"cannot read key file {path}: {exc.strerror or exc}", hint=hint) from None
    text = data.strip()
    if len(text) == 2 * KEY_BYTES and re.fullmatch(rb"[0-9a-fA-F]+", text):
        return bytes.fromhex(text.decode("ascii"))
    if len(data) == KEY_BYTES:
        return data
    raise UsageError(f"{path} is not a tgexport key (expected {2 * KEY_BYTES} hex digits)", hint=hint)


@dataclass(frozen=True)
class PseudonymizeSpec:
    """What a task needs to pseudonymize: the key (in memory only) and the two scope flags."""

    key: bytes = field(repr=False)
    chats: bool = False  # --pseudonymize-chats: channels and groups too
    redact_text: bool = False  # --redact-text: persons inside `text` too

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)


def spec_from_options(
    enabled: bool, key_file: Path | None, chats: bool, redact: bool, output: Path | str | None
) -> PseudonymizeSpec | None:
    """Check the convert options that go together and load the key."""
    if not enabled:
        for flag, given in (("--key-file", key_file), ("--pseudonymize-chats", chats), ("--redact-text", redact)):
            if given:
                raise UsageError(f"{flag} needs --pseudonymize", hint="add --pseudonymize --key-file KEY")
        return None
    if key_file is None:
        raise UsageError("--pseudonymize needs --key-file KEY", hint="create a key with `tgexport keygen KEY`")
    if isinstance(output, Path) and key_file.resolve().is_relative_to(output.resolve()):
        raise UsageError(
            f"the key file {key_file} is inside the dataset folder", hint="keep the key outside the dataset"
        )
    return PseudonymizeSpec(load_key(key_file), chats, redact)


# --- identities ----------------------------------------------------------------------------------


def normalize_name(name: str) -> str:
    """Unicode NFKC, case folded, whitespace collapsed."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join(folded.split())


def normalize_username(name: str) -> str:
    return name.strip().lstrip("@").lower()


def normalize_phone(phone: str) -> str:
    return re.sub(r"\D", "", phone)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def numeric(value: Any) -> str:
    """A Telegram id in any spelling (`123`, `"123"`, `"user123"`) -> its digits."""
    text = str(value).strip()
    match = PEER_RE.match(text)
    return match.group(2) if match else text


class Keyring:
    """HMAC pseudonyms for one key (cached: the same few persons recur in every chat)."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._cache: dict[str, bytes] = {}

    def digest(self, identity: str) -> bytes:
        found = self._cache.get(identity)
        if found is None:
            if len(self._cache) > 200_000:
                self._cache.clear()
            found = hmac.new(self._key, identity.encode("utf-8"), hashlib.sha256).digest()[: HEX_DIGITS // 2]
            self._cache[identity] = found
        return found

    def text(self, kind: str, identity: str) -> str:
        return f"{kind}:{self.digest(identity).hex()}"

    def integer(self, identity: str) -> int:
        return INT_BASE | (int.from_bytes(self.digest(identity), "big") >> 2)

    def user(self, user_id: Any) -> str:
        return self.text("user", "user" + numeric(user_id))

    def user_int(self, user_id: Any) -> int:
        return self.integer("user" + numeric(user_id))

    def chat(self, chat_id: Any) -> str:
        return self.text("chat", "chat" + numeric(chat_id))

    def chat_int(self, chat_id: Any) -> int:
        return self.integer("chat" + numeric(chat_id))

    def name(self, name: str) -> str:
        return self.text("name", "name:" + normalize_name(name))

    def username(self, name: str) -> str:
        return self.text("username", "username:" + normalize_username(name))

    def phone(self, phone: str) -> str:
        return self.text("phone", "phone:" + normalize_phone(phone))

    def email(self, email: str) -> str:
        return self.text("email", "email:" + normalize_email(email))


# --- the policy, read from the schema ---------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    path: tuple[str, ...]
    kind: str
    scope: str

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


@lru_cache(maxsize=1)
def policy() -> tuple[Rule, ...]:
    """Every `x-pii` annotation of the schema as a rule; unknown kinds or scopes are an error."""
    rules: list[Rule] = []

    def walk(node: dict[str, Any], path: tuple[str, ...]) -> None:
        if "x-pii" in node:
            kind, scope = node["x-pii"], node.get("x-pii-scope", "person")
            if scope not in KINDS.get(kind, ()):
                raise SchemaError(
                    f"x-pii {kind!r} with scope {scope!r} at {'.'.join(path)} is not known to the pseudonymizer",
                    hint="use a kind and scope listed in docs/pseudonymization.md, or teach exporter/pseudonymize.py",
                )
            rules.append(Rule(path, kind, scope))
        for name, child in node.get("properties", {}).items():
            walk(child, (*path, name))
        if "items" in node:
            walk(node["items"], path)

    walk(load_schema(), ())
    return tuple(rules)


def active_rules(spec: PseudonymizeSpec) -> list[Rule]:
    """The rules that can change a value under these flags."""
    return [r for r in policy() if spec.redact_text or r.scope != "text" or r.kind == "entities"]


# --- one record ------------------------------------------------------------------------------


class _Context:
    """What one record says about who is a person; collects originals for its raw fragment."""

    def __init__(self, ring: Keyring, spec: PseudonymizeSpec, record: dict[str, Any]) -> None:
        self.ring, self.spec, self.record = ring, spec, record
        self.original = dict(record)
        self.original["entities"] = [dict(e) for e in record.get("entities") or []]
        self.replaced: dict[str, str] = {}
        chat_type = record.get("chat_type")
        public = bool(record.get("chat_username") or record.get("url"))
        public = public or record.get("source_format") in PUBLIC_ONLY_FORMATS
        self.chat_is_person = chat_type in PERSON_CHATS or (chat_type not in GROUP_CHATS and not public)
        self.chat_hidden = self.chat_is_person or spec.chats
        sender = PEER_RE.match(record.get("sender_id") or "")
        title = record.get("chat_title")
        if sender:
            self.sender_is_chat = sender.group(1) != "user"
        else:
            self.sender_is_chat = bool(title) and record.get("sender_name") == title and not self.chat_is_person
        self.forward_is_chat = (
            record.get("forward_from_chat_id") is not None or record.get("forward_from_post_id") is not None
        )
        chats = set(post_link_usernames(record.get("urls") or ()))
        if record.get("chat_username") and not self.chat_is_person:
            chats.add(record["chat_username"].lower())
        if record.get("forward_from_username") and self.forward_is_chat:
            chats.add(record["forward_from_username"].lower())
        self.chat_usernames = chats

    def _note(self, original: Any, pseudonym: Any) -> Any:
        if original is not None and str(original).strip():
            self.replaced[str(original)] = str(pseudonym)
        return pseudonym

    # Decider (pseudonymize_text) -----------------------------------------------------------
    def mention(self, username: str) -> str | None:
        if username.lower() in self.chat_usernames and not self.spec.chats:
            return None
        return self._note(username, self.ring.username(username))

    def user(self, user_id: Any) -> str:
        return self._note(user_id, self.ring.user(user_id))

    def user_int(self, user_id: Any) -> int:
        return self._note(user_id, self.ring.user_int(user_id))

    def peer(self, value: str) -> str:
        match = PEER_RE.match(value)
        if match is None:
            return value
        if match.group(1) == "user":
            return self._note(value, self.ring.user(match.group(2)))
        return self._note(value, self.ring.chat(match.group(2))) if self.spec.chats else value

    def name(self, name: str) -> str:
        return self._note(name, self.ring.name(name))

    def phone(self, phone: str) -> str:
        return self._note(phone, self.ring.phone(phone))

    def email(self, email: str) -> str:
        return self._note(email, self.ring.email(email))

    def actor(self, name: str) -> str | None:
        title = self.original.get("chat_title")
        if name == title and not self.chat_hidden and not self.chat_is_person:
            return None
        return self.name(name)

    def alias(self, original: str, pseudonym: str) -> None:
        self._note(original, pseudonym)

    def known_names(self) -> list[str]:
        return [o for o, p in self.replaced.items() if p.startswith("name:")]

    def found(self) -> dict[str, str]:
        return self.replaced


def _transform(ctx: _Context, kind: str, scope: str, value: Any) -> Any:
    """The new value of one annotated field (`value` is the original)."""
    if value is None or value == [] or value == "":
        return value
    spec, ring, rec = ctx.spec, ctx.ring, ctx.original
    if kind == "sender_id":
        return ctx.peer(value)
    if kind == "person_name":
        is_chat = ctx.sender_is_chat if scope == "sender" else ctx.forward_is_chat if scope == "forward" else False
        return ctx.name(value) if (not is_chat or spec.chats) else value
    if kind == "user_id":
        return ctx.user_int(value)
    if kind == "chat_id":
        if scope == "chat" and ctx.chat_is_person:
            return ctx._note(value, ring.user_int(value))
        return ctx._note(value, ring.chat_int(value)) if (ctx.chat_hidden if scope == "chat" else spec.chats) else value
    if kind == "chat_username":
        hidden = ctx.chat_hidden if scope == "chat" else (spec.chats or not ctx.forward_is_chat)
        return ctx._note(value, ring.username(value)) if hidden else value
    if kind == "chat_name":
        return ctx.name(value) if ctx.chat_hidden else value
    if kind == "chat_url":
        return value if not ctx.chat_hidden else _url(ctx)
    if kind == "usernames":
        return list(dict.fromkeys(ctx.mention(v) or v for v in value))
    if kind == "free_text":
        service = rec.get("kind") == "service"
        current = ctx.record.get("entities") or []
        text, ctx.record["entities"] = redact_text(value, rec["entities"], ctx, service, current)
        return text
    if kind == "urls":
        return list(dict.fromkeys(redact_link(u, ctx) for u in value))
    return value  # "entities": a container; its fields carry their own annotations


def _url(ctx: _Context) -> str | None:
    """Rebuilt from the pseudonymized chat fields, as the merge step would (no longer a working link)."""
    rec = ctx.record
    if rec.get("post_id") is None:
        return None
    return post_url(rec.get("chat_username"), rec.get("chat_id"), rec.get("chat_type"), rec["post_id"])


def _apply(ctx: _Context, container: Any, path: tuple[str, ...], rule: Rule) -> None:
    if not isinstance(container, dict) or path[0] not in container:
        return
    if len(path) == 1:
        container[path[0]] = _transform(ctx, rule.kind, rule.scope, container[path[0]])
        return
    child = container[path[0]]
    for item in child if isinstance(child, list) else [child]:
        _apply(ctx, item, path[1:], rule)


class Pseudonymizer:
    """Applies the schema's policy to records, Arrow tables and reject lines, for one key."""

    def __init__(self, spec: PseudonymizeSpec) -> None:
        self.spec = spec
        self.ring = Keyring(spec.key)
        rules = active_rules(spec)
        # The url (rebuilt from the chat fields) and the text (reusing the names found) go last.
        self.rules = sorted(rules, key=lambda r: (r.kind == "free_text", r.kind == "chat_url"))
        self.columns = tuple(dict.fromkeys([*(r.path[0] for r in self.rules), *CONTEXT_FIELDS]))

    def record(self, record: dict[str, Any]) -> _Context:
        """Pseudonymize `record` in place; the returned context serves its reject line."""
        ctx = _Context(self.ring, self.spec, record)
        for rule in self.rules:
            _apply(ctx, record, rule.path, rule)
        return ctx

    def reject(self, raw: Any, problems: list[str], ctx: _Context | None) -> tuple[Any, list[str]]:
        """Raw fragment and reasons of a quarantined item, persons pseudonymized (text with no record: withheld)."""
        if ctx is None:
            ctx = _Context(self.ring, self.spec, {})
            if isinstance(raw, str):
                raw = {"withheld": "raw text fragment withheld: pseudonymized run, no record parsed", "chars": len(raw)}
        redact = True  # rejects are not analysis data: every mention, phone and e-mail goes
        return scrub_raw(raw, ctx, redact), [scrub_string(p, ctx, redact) for p in problems]

    def table(self, table: pa.Table) -> pa.Table:
        """The same transform over an Arrow table (for a columnar fast path, before validation)."""
        names = [n for n in self.columns if n in table.schema.names]
        part = table.select(names)
        rows = part.to_pylist()
        for row in rows:
            self.record(row)
        new = pa.Table.from_pylist(rows, schema=part.schema)
        for name in names:
            index = table.schema.get_field_index(name)
            table = table.set_column(index, table.schema.field(index), new.column(name))
        return table


@lru_cache(maxsize=4)
def pseudonymizer_for(spec: PseudonymizeSpec | None) -> Pseudonymizer | None:
    """One Pseudonymizer per process and spec (None when pseudonymization is off)."""
    return None if spec is None else Pseudonymizer(spec)


def pseudonymize_batch(batch: pa.Table | pa.RecordBatch, spec: PseudonymizeSpec) -> pa.Table | pa.RecordBatch:
    """Arrow entry point: a table or record batch with the policy applied (same schema)."""
    pseudo = pseudonymizer_for(spec)
    assert pseudo is not None
    if isinstance(batch, pa.RecordBatch):
        out = pseudo.table(pa.Table.from_batches([batch])).combine_chunks()
        return out.to_batches()[0] if out.num_rows else batch
    return pseudo.table(batch)


# --- what the manifest records, and --append ----------------------------------------------------


def describe(spec: PseudonymizeSpec | None) -> dict[str, Any] | None:
    """The manifest's `pseudonymization` entry (None when off). Never holds the key."""
    if spec is None:
        return None
    return {
        "applied": True,
        "method": "HMAC-SHA256",
        "method_version": METHOD_VERSION,
        "pseudonym": f"<kind>:<first {HEX_DIGITS} hex digits ({HEX_DIGITS * 4} bits) of HMAC-SHA256(key, identity)>",
        "integer_pseudonym": "2^62 + (first 64 bits of HMAC-SHA256(key, identity) >> 2)",
        "key_fingerprint": spec.fingerprint,
        "key_fingerprint_method": f"first {HEX_DIGITS} hex digits of HMAC-SHA256(key, {FINGERPRINT_LABEL.decode()!r})",
        "pseudonymize_chats": spec.chats,
        "redact_text": spec.redact_text,
        "fields": {r.dotted: {"kind": r.kind, "scope": r.scope} for r in active_rules(spec) if r.kind != "entities"},
        "rejects": "raw fragments: person fields pseudonymized, mentions, phones and e-mails redacted",
        "documentation": "docs/pseudonymization.md",
    }


def check_append(manifest: dict[str, Any], spec: PseudonymizeSpec | None, root: Path) -> None:
    """Refuse an append whose pseudonymization differs from the dataset's."""
    old = manifest.get("pseudonymization") or None
    hint = "pass the same --pseudonymize --key-file (and scope flags) the dataset was made with"
    if old and spec is None:
        raise UsageError(
            f"{root} is pseudonymized (key fingerprint {old.get('key_fingerprint')}); "
            "appending without --pseudonymize would add real identities to it",
            hint=hint,
        )
    if spec is not None and not old:
        raise UsageError(
            f"{root} is not pseudonymized; a pseudonymized append would mix pseudonyms with real identities",
            hint="append without --pseudonymize, or convert every input into a new dataset with --pseudonymize",
        )
    if spec is None or old is None:
        return
    if old.get("key_fingerprint") != spec.fingerprint:
        raise UsageError(
            f"{root} was pseudonymized with another key (fingerprint {old.get('key_fingerprint')}, "
            f"this key has {spec.fingerprint}); the same persons would get other pseudonyms",
            hint="pass the --key-file the dataset was made with",
        )
    for flag, name in (("pseudonymize_chats", "--pseudonymize-chats"), ("redact_text", "--redact-text")):
        if bool(old.get(flag)) != getattr(spec, "chats" if flag == "pseudonymize_chats" else flag):
            state = "with" if old.get(flag) else "without"
            raise UsageError(f"{root} was pseudonymized {state} {name}", hint=hint)
